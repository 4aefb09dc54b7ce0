//! The value sets of the snapshot's indexes: most hold one element (one ExternalService per
//! name, one destination per name), a few hold thousands (every policy selecting namespace
//! `bookinfo`). A `BTreeSet` allocates a whole 11-slot node for one element (632 bytes for a
//! `DestRef`: the largest site of the 41,000-object heap profile, issue 12), so small sets are
//! a sorted `Vec` of exactly their size, and become a `BTreeSet` once they grow past
//! [`FEW`], where inserting into a sorted `Vec` would start to cost. Written here rather than
//! taken from a crate: the crates in reach (smallvec, tinyvec) are inline arrays, which would
//! make every set as large as its largest case again.

use std::collections::BTreeSet;

/// Up to this many elements a set is a sorted `Vec`.
const FEW: usize = 16;

#[derive(Clone, Debug)]
pub enum SmallSet<V> {
    Few(Vec<V>),
    Many(BTreeSet<V>),
}

impl<V> Default for SmallSet<V> {
    fn default() -> Self {
        SmallSet::Few(Vec::new())
    }
}

impl<V: Ord> SmallSet<V> {
    /// True when `v` was not there.
    pub fn insert(&mut self, v: V) -> bool {
        match self {
            SmallSet::Few(few) => match few.binary_search(&v) {
                Ok(_) => false,
                Err(i) if few.len() < FEW => {
                    // Exact growth: a set of one is one element, not the four `Vec` doubles to.
                    few.reserve_exact(1);
                    few.insert(i, v);
                    true
                }
                Err(_) => {
                    let mut many: BTreeSet<V> = std::mem::take(few).into_iter().collect();
                    many.insert(v);
                    *self = SmallSet::Many(many);
                    true
                }
            },
            SmallSet::Many(many) => many.insert(v),
        }
    }

    /// True when `v` was there.
    pub fn remove(&mut self, v: &V) -> bool {
        match self {
            SmallSet::Few(few) => match few.binary_search(v) {
                Ok(i) => {
                    few.remove(i);
                    true
                }
                Err(_) => false,
            },
            SmallSet::Many(many) => many.remove(v),
        }
    }

    pub fn contains(&self, v: &V) -> bool {
        match self {
            SmallSet::Few(few) => few.binary_search(v).is_ok(),
            SmallSet::Many(many) => many.contains(v),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> usize {
        match self {
            SmallSet::Few(few) => few.len(),
            SmallSet::Many(many) => many.len(),
        }
    }

    /// In order, as a `BTreeSet` iterates.
    pub fn iter(&self) -> Iter<'_, V> {
        match self {
            SmallSet::Few(few) => Iter::Few(few.iter()),
            SmallSet::Many(many) => Iter::Many(many.iter()),
        }
    }
}

pub enum Iter<'a, V> {
    Few(std::slice::Iter<'a, V>),
    Many(std::collections::btree_set::Iter<'a, V>),
}

impl<'a, V> Iterator for Iter<'a, V> {
    type Item = &'a V;
    fn next(&mut self) -> Option<&'a V> {
        match self {
            Iter::Few(i) => i.next(),
            Iter::Many(i) => i.next(),
        }
    }
}

impl<'a, V: Ord> IntoIterator for &'a SmallSet<V> {
    type Item = &'a V;
    type IntoIter = Iter<'a, V>;
    fn into_iter(self) -> Iter<'a, V> {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_like_a_btreeset_across_the_switch() {
        let mut small = SmallSet::default();
        let mut reference = BTreeSet::new();
        // Inserts and removes in a scrambled order, through both representations and back.
        for i in 0..200u32 {
            let v = (i * 37) % 101;
            assert_eq!(small.insert(v), reference.insert(v), "insert {v}");
            if i % 3 == 0 {
                let r = (i * 11) % 101;
                assert_eq!(small.remove(&r), reference.remove(&r), "remove {r}");
            }
            assert_eq!(small.len(), reference.len());
            assert!(small.iter().eq(reference.iter()), "order after {i}");
        }
        assert!(matches!(small, SmallSet::Many(_)), "grew past FEW");
        for v in 0..101 {
            assert_eq!(small.contains(&v), reference.contains(&v));
            small.remove(&v);
        }
        assert!(small.is_empty());
    }

    #[test]
    fn a_set_of_one_holds_one_slot() {
        let mut s = SmallSet::default();
        s.insert(("ns".to_string(), "name".to_string()));
        match s {
            SmallSet::Few(v) => assert_eq!(v.capacity(), 1),
            SmallSet::Many(_) => panic!("one element is few"),
        }
    }
}
