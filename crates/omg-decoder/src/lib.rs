//! omg-decoder (placeholder)
