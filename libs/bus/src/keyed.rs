//! Handling a batch with the messages of different keys (incidents) at
//! once and those of one key in turn, in batch order: what a stage whose
//! handling of one key must see the effects of the one before (a later
//! decision superseding an earlier) and whose keys are independent needs.

use std::future::Future;
use std::hash::Hash;

use futures::StreamExt as _;

/// Handles `batch` with `handle_one`: the messages of each key (by `key`;
/// `None` for one that names none, each its own) in batch order, up to
/// `at_once` keys concurrently. The outcomes keep the batch's order.
pub async fn by_key<'a, T, K, O, F, Fut>(
    batch: &'a [T],
    at_once: usize,
    key: impl Fn(&T) -> Option<K>,
    handle_one: F,
) -> Vec<O>
where
    K: Eq + Hash,
    F: Fn(&'a T) -> Fut,
    Fut: Future<Output = O>,
{
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut index: std::collections::HashMap<K, usize> = std::collections::HashMap::new();
    for (i, d) in batch.iter().enumerate() {
        match key(d) {
            Some(k) => {
                let g = *index.entry(k).or_insert_with(|| {
                    groups.push(Vec::new());
                    groups.len() - 1
                });
                groups[g].push(i);
            }
            None => groups.push(vec![i]),
        }
    }
    let handle_one = &handle_one;
    let done: Vec<Vec<(usize, O)>> = futures::stream::iter(groups)
        .map(|group| async move {
            let mut out = Vec::with_capacity(group.len());
            for i in group {
                out.push((i, handle_one(&batch[i]).await));
            }
            out
        })
        .buffer_unordered(at_once.max(1))
        .collect()
        .await;
    // Every index is in exactly one group: sorted, they are the batch.
    let mut done: Vec<(usize, O)> = done.into_iter().flatten().collect();
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, o)| o).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::by_key;

    #[tokio::test]
    async fn one_keys_messages_go_in_turn_and_the_outcomes_keep_the_batch_order() {
        // (key, pause in ms): key 1's first message is slow, so key 2's
        // finish first; key 1's second still waits for its first.
        let batch = [(1, 30), (2, 0), (1, 0), (3, 0), (2, 10)];
        let seen = Mutex::new(Vec::new());
        let out = by_key(
            &batch,
            4,
            |m: &(i32, u64)| Some(m.0),
            |m| {
                let seen = &seen;
                async move {
                    tokio::time::sleep(Duration::from_millis(m.1)).await;
                    seen.lock().unwrap().push(*m);
                    m.0 * 10
                }
            },
        )
        .await;
        assert_eq!(out, [10, 20, 10, 30, 20]);
        let seen = seen.into_inner().unwrap();
        let ones: Vec<_> = seen.iter().filter(|m| m.0 == 1).collect();
        assert_eq!(ones, [&(1, 30), &(1, 0)], "in turn: {seen:?}");
        assert_ne!(seen[0], (1, 30), "keys at once: {seen:?}");
    }
}
