//! Fair shares of the push workers across owners (the owner of a subscription, or the agent a
//! handler push goes to): due deliveries are taken round-robin, one per owner per round, each
//! owner in the order of its soonest due delivery, and no owner gets more workers than its
//! room (`--push-workers-per-owner` minus what it has on workers now). So one owner's slow or
//! hanging endpoints hold at most its share, and the others' pushes go out on the rest.

use std::collections::{HashMap, VecDeque};

/// A due delivery that could be taken: when it fell due, its rowid, its owner.
pub type Candidate = (i64, i64, String);

/// The deliveries (rowid, owner) to hand to workers, at most `free_workers`: round-robin over
/// the owners, soonest due first within each, each owner within `room(owner)`.
pub fn pick(
    mut candidates: Vec<Candidate>,
    room: impl Fn(&str) -> usize,
    free_workers: usize,
) -> Vec<(i64, String)> {
    candidates.sort_unstable();
    let mut order: Vec<String> = Vec::new();
    let mut queues: HashMap<String, (usize, VecDeque<i64>)> = HashMap::new();
    for (_, rowid, owner) in candidates {
        let entry = queues.entry(owner).or_insert_with_key(|o| {
            order.push(o.clone());
            (room(o), VecDeque::new())
        });
        entry.1.push_back(rowid);
    }
    let mut picked = Vec::new();
    loop {
        let mut took = false;
        for owner in &order {
            if picked.len() >= free_workers {
                return picked;
            }
            let Some((left, queue)) = queues.get_mut(owner) else {
                continue;
            };
            if *left == 0 {
                continue;
            }
            if let Some(rowid) = queue.pop_front() {
                picked.push((rowid, owner.clone()));
                *left -= 1;
                took = true;
            }
        }
        if !took {
            return picked;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(at: i64, rowid: i64, owner: &str) -> Candidate {
        (at, rowid, owner.to_string())
    }

    fn rowids(picked: Vec<(i64, String)>) -> Vec<i64> {
        picked.into_iter().map(|(rowid, _)| rowid).collect()
    }

    #[test]
    fn owners_take_turns_and_none_passes_its_room() {
        // The slow owner's deliveries are all due first; the healthy owner still gets a turn.
        let mut due: Vec<Candidate> = (0..20).map(|i| c(i, i, "agent://slow")).collect();
        due.push(c(100, 100, "agent://ok"));
        due.push(c(101, 101, "agent://ok"));
        let room = |o: &str| if o == "agent://slow" { 3 } else { 8 };
        let picked = pick(due, room, 16);
        assert_eq!(picked[1], (100, "agent://ok".to_string()));
        assert_eq!(rowids(picked), vec![0, 100, 1, 101, 2]);
    }

    #[test]
    fn free_workers_bound_the_pick_and_the_soonest_owner_goes_first() {
        let due = vec![c(5, 1, "b"), c(1, 2, "a"), c(2, 3, "a"), c(9, 4, "b")];
        assert_eq!(rowids(pick(due.clone(), |_| 10, 3)), vec![2, 1, 3]);
        assert_eq!(rowids(pick(due.clone(), |_| 10, 10)), vec![2, 1, 3, 4]);
        assert_eq!(rowids(pick(due, |o| usize::from(o == "b"), 10)), vec![1]);
        assert!(pick(Vec::new(), |_| 1, 4).is_empty());
    }
}
