//! Turns: the order of the batches one consumer loop has in flight.
//!
//! A loop that handles more than one batch at once gives each batch a
//! [`Turn`] in the order the batches were fetched. A handler does whatever
//! may overlap (decoding, writes no other batch can need) first, then
//! [`Turn::wait`]s for the batches before it to finish, and keeps its turn
//! until its own commit: the parts that must follow the stream's order
//! (an incident opened by one batch and resolved by the next) then run in
//! that order, one batch at a time. Dropping a turn passes it on, so a
//! handler that fails or panics never blocks the batches after it.

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tokio::sync::oneshot;

/// Ready when a batch's turn and the turns of every batch before it are
/// over.
type Done = Shared<BoxFuture<'static, ()>>;

/// One batch's place in its loop's order.
#[derive(Debug)]
pub struct Turn {
    /// The end of the previous batch's turn; None for the first batch.
    previous: Option<Done>,
    /// Ends this turn when sent or dropped.
    done: Option<oneshot::Sender<()>>,
}

impl Turn {
    /// A turn that follows no one (a loop with one batch in flight, the
    /// handling of a single message).
    #[must_use]
    pub fn first() -> Self {
        Self {
            previous: None,
            done: None,
        }
    }

    /// Waits until every batch given its turn before this one has finished
    /// its turn. Waiting again returns at once.
    pub async fn wait(&self) {
        if let Some(previous) = &self.previous {
            previous.clone().await;
        }
    }

    /// Whether the batches before this one have finished their turns.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.previous
            .as_ref()
            .is_none_or(|p| p.clone().now_or_never().is_some())
    }

    /// Ends this turn: the next batch may go on.
    pub fn pass(mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.send(());
        }
    }
}

/// Hands out turns in order.
#[derive(Debug, Default)]
pub struct Turns {
    last: Option<Done>,
}

impl Turns {
    /// The next batch's turn.
    pub fn next_turn(&mut self) -> Turn {
        let (tx, rx) = oneshot::channel::<()>();
        let previous = self.last.take();
        let before = previous.clone();
        // This turn is over once it is sent or dropped, and once the turns
        // before it are: a batch that gives up early does not let the next
        // one overtake a batch still in its turn.
        let over = async move {
            if let Some(before) = before {
                before.await;
            }
            let _ = rx.await;
        };
        self.last = Some(over.boxed().shared());
        Turn {
            previous,
            done: Some(tx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_turn_waits_for_the_ones_before_it() {
        let mut turns = Turns::default();
        let (a, b, c) = (turns.next_turn(), turns.next_turn(), turns.next_turn());
        assert!(a.is_ready());
        assert!(!b.is_ready() && !c.is_ready());
        a.wait().await;
        a.pass();
        assert!(b.is_ready());
        assert!(!c.is_ready(), "c also waits for b");
        drop(b);
        assert!(c.is_ready(), "a dropped turn is over");
        c.wait().await;
        c.wait().await;
    }

    #[tokio::test]
    async fn a_turn_given_up_early_does_not_let_the_next_overtake() {
        let mut turns = Turns::default();
        let (a, b, c) = (turns.next_turn(), turns.next_turn(), turns.next_turn());
        drop(b);
        assert!(!c.is_ready(), "a is still in its turn");
        a.pass();
        assert!(c.is_ready());
    }

    #[tokio::test]
    async fn the_first_turn_is_ready() {
        let t = Turn::first();
        assert!(t.is_ready());
        t.wait().await;
    }
}
