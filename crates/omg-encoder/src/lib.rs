//! omg-encoder (placeholder)
