//! Replica placement: which data nodes hold a chunk. Weighted rendezvous hashing (highest random
//! weight): every node gets a pseudo-random score for the chunk, scaled by its free space, and
//! the best scores win. Adding or removing a node moves only the chunks that node wins or held,
//! and fuller nodes receive proportionally fewer new chunks. When nodes carry zones, the first
//! replicas go to distinct zones so that losing one zone never loses every copy.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::chunk::ChunkId;

/// A node that may receive a chunk: up, not draining, with room for one more chunk.
#[derive(Clone, Debug)]
pub struct Candidate<'a> {
    pub id: Uuid,
    pub zone: Option<&'a str>,
    /// Free bytes; the weight of the node.
    pub free: u64,
}

/// The unweighted rendezvous hash of `node` for `chunk`, the same on every gateway.
pub fn rendezvous_hash(chunk: ChunkId, node: Uuid) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(chunk.0.as_bytes());
    hasher.update(node.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The rendezvous score of `node` for `chunk`: `weight / -ln(h)` with `h` uniform in (0, 1),
/// which makes a node's chance of the top score proportional to its weight.
fn score(chunk: ChunkId, node: &Candidate<'_>) -> f64 {
    let h = (rendezvous_hash(chunk, node.id) as f64 + 0.5) / 18_446_744_073_709_551_616.0;
    let weight = node.free.max(1) as f64;
    weight / -h.ln()
}

/// Up to `replicas` distinct nodes for `chunk`, best first, spread over as many zones as
/// possible.
pub fn place(chunk: ChunkId, nodes: &[Candidate<'_>], replicas: usize) -> Vec<Uuid> {
    let mut ranked: Vec<(f64, &Candidate<'_>)> =
        nodes.iter().map(|n| (score(chunk, n), n)).collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.id.cmp(&b.1.id)));
    let mut chosen: Vec<&Candidate<'_>> = Vec::with_capacity(replicas.min(nodes.len()));
    // First pass: the best node of each zone not yet used.
    for (_, node) in &ranked {
        if chosen.len() == replicas {
            break;
        }
        if chosen
            .iter()
            .all(|c| c.zone != node.zone || node.zone.is_none())
        {
            chosen.push(node);
        }
    }
    // Second pass: fill up by score once zones run out.
    for (_, node) in &ranked {
        if chosen.len() == replicas {
            break;
        }
        if chosen.iter().all(|c| c.id != node.id) {
            chosen.push(node);
        }
    }
    chosen.iter().map(|c| c.id).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn node(n: u128, zone: Option<&str>, free: u64) -> Candidate<'_> {
        Candidate {
            id: Uuid::from_u128(n),
            zone,
            free,
        }
    }

    #[test]
    fn distinct_and_deterministic() {
        let nodes: Vec<_> = (1..=5).map(|n| node(n, None, 100)).collect();
        for _ in 0..200 {
            let chunk = ChunkId::random();
            let a = place(chunk, &nodes, 3);
            assert_eq!(a.len(), 3);
            let mut uniq = a.clone();
            uniq.sort();
            uniq.dedup();
            assert_eq!(uniq.len(), 3);
            assert_eq!(a, place(chunk, &nodes, 3));
        }
    }

    #[test]
    fn fewer_nodes_than_replicas() {
        let nodes = vec![node(1, None, 10), node(2, None, 10)];
        assert_eq!(place(ChunkId::random(), &nodes, 3).len(), 2);
        // A full ranking of every node, as a write with stand-ins asks for.
        assert_eq!(place(ChunkId::random(), &nodes, usize::MAX).len(), 2);
        assert!(place(ChunkId::random(), &[], 3).is_empty());
    }

    #[test]
    fn spreads_over_zones_first() {
        let nodes = vec![
            node(1, Some("a"), 1000),
            node(2, Some("a"), 1000),
            node(3, Some("a"), 1000),
            node(4, Some("b"), 1),
        ];
        for _ in 0..100 {
            let chosen = place(ChunkId::random(), &nodes, 2);
            assert!(
                chosen.contains(&Uuid::from_u128(4)),
                "zone b must hold a replica"
            );
        }
    }

    #[test]
    fn share_follows_free_space() {
        let nodes = vec![node(1, None, 100), node(2, None, 200), node(3, None, 100)];
        let mut wins: HashMap<Uuid, u32> = HashMap::new();
        const N: u32 = 20_000;
        for _ in 0..N {
            *wins
                .entry(place(ChunkId::random(), &nodes, 1)[0])
                .or_default() += 1;
        }
        let share = |n| f64::from(wins[&Uuid::from_u128(n)]) / f64::from(N);
        assert!((share(2) - 0.5).abs() < 0.03, "node 2 won {}", share(2));
        assert!((share(1) - 0.25).abs() < 0.03, "node 1 won {}", share(1));
    }

    #[test]
    fn removing_a_node_moves_only_its_chunks() {
        let nodes: Vec<_> = (1..=5).map(|n| node(n, None, 100)).collect();
        let fewer: Vec<_> = nodes
            .iter()
            .filter(|n| n.id != Uuid::from_u128(5))
            .cloned()
            .collect();
        for _ in 0..500 {
            let chunk = ChunkId::random();
            let before = place(chunk, &nodes, 1)[0];
            if before != Uuid::from_u128(5) {
                assert_eq!(place(chunk, &fewer, 1)[0], before);
            }
        }
    }
}
