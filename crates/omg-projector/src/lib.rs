//! omg-projector (placeholder)
