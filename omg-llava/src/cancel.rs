//! [`CancelToken`]: stops a generation from another thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A flag that stops a generation at its next token: give a clone to
/// [`GenerateOptions::with_cancel`](crate::GenerateOptions::with_cancel), call
/// [`cancel`](Self::cancel) from anywhere (a server whose client has gone, a user's
/// stop button), and the Pipeline call returns [`OmgLlavaError::Cancelled`](crate::OmgLlavaError::Cancelled)
/// before its next step (the prefill included). Clones share one flag; two tokens are
/// equal when they are clones of each other.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token not yet cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels every generation holding a clone of this token.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether [`cancel`](Self::cancel) has been called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

impl PartialEq for CancelToken {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_flag_and_only_clones_are_equal() {
        let a = CancelToken::new();
        let b = a.clone();
        let other = CancelToken::new();
        assert_eq!(a, b);
        assert_ne!(a, other);
        assert!(!b.is_cancelled());
        a.cancel();
        assert!(b.is_cancelled());
        assert!(!other.is_cancelled());
    }
}
