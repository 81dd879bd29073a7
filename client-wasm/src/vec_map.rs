//! A map and a set on a sorted `Vec`, for the client's small collections keyed by number
//! (packets in flight, pending commands): binary search to find, a memmove to insert or remove.
//! They hold tens of entries, where this is as fast as a B-tree; and `BTreeMap`'s code, made
//! again for every key and value type, was about a tenth of the `.wasm`. Their lookups,
//! inserts and removes are not inlined: each is then one copy per map type instead of one per
//! place that calls it (0.4 KB smaller gzipped).

use alloc::vec::Vec;
use core::borrow::Borrow;

/// A map ordered by key.
#[derive(Clone, Debug)]
pub(crate) struct VecMap<K, V>(Vec<(K, V)>);

impl<K, V> Default for VecMap<K, V> {
    fn default() -> Self {
        VecMap(Vec::new())
    }
}

impl<K: Ord, V> VecMap<K, V> {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    #[inline(never)]
    fn find<Q: Ord + ?Sized>(&self, key: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
    {
        self.0.binary_search_by(|(k, _)| k.borrow().cmp(key))
    }

    #[inline(never)]
    pub(crate) fn get<Q: Ord + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        let i = self.find(key).ok()?;
        self.0.get(i).map(|(_, v)| v)
    }

    #[inline(never)]
    pub(crate) fn contains_key<Q: Ord + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.find(key).is_ok()
    }

    /// Inserts, or replaces (and drops) the value there; returns whether the key was new.
    /// No caller wants the value replaced, and handing it back cost a copy of it per map type.
    #[inline(never)]
    pub(crate) fn insert(&mut self, key: K, value: V) -> bool {
        match self.find(&key) {
            Ok(i) => {
                if let Some((_, v)) = self.0.get_mut(i) {
                    *v = value;
                }
                false
            }
            Err(i) => {
                self.0.insert(i, (key, value));
                true
            }
        }
    }

    #[inline(never)]
    pub(crate) fn remove<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        let i = self.find(key).ok()?;
        Some(self.0.remove(i).1)
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut V)> {
        self.0.iter_mut().map(|(k, v)| (&*k, v))
    }

    pub(crate) fn into_values(self) -> impl DoubleEndedIterator<Item = V> {
        self.0.into_iter().map(|(_, v)| v)
    }
}

impl<K, V> IntoIterator for VecMap<K, V> {
    type Item = (K, V);
    type IntoIter = alloc::vec::IntoIter<(K, V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// A set, ordered.
#[derive(Clone, Debug, Default)]
pub(crate) struct VecSet<T>(VecMap<T, ()>);

impl<T: Ord> VecSet<T> {
    pub(crate) fn new() -> Self {
        VecSet(VecMap::new())
    }

    /// Whether `value` was not there yet.
    pub(crate) fn insert(&mut self, value: T) -> bool {
        self.0.insert(value, ())
    }

    /// Whether `value` was there.
    pub(crate) fn remove<Q: Ord + ?Sized>(&mut self, value: &Q) -> bool
    where
        T: Borrow<Q>,
    {
        self.0.remove(value).is_some()
    }

    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_like_a_btree_map() {
        let mut map = VecMap::new();
        let mut reference = std::collections::BTreeMap::new();
        // A fixed pseudo-random walk of inserts and removes.
        let mut x: u32 = 7;
        for _ in 0..2000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let key = (x >> 16) % 64;
            if x.is_multiple_of(3) {
                assert_eq!(map.remove(&key), reference.remove(&key));
            } else {
                assert_eq!(map.insert(key, x), reference.insert(key, x).is_none());
            }
            assert_eq!(map.len(), reference.len());
            assert_eq!(map.get(&key), reference.get(&key));
        }
        let ours: Vec<_> = map.into_iter().collect();
        let theirs: Vec<_> = reference.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn string_keys_are_found_by_str() {
        let mut map = VecMap::new();
        assert!(map.insert("b".to_owned(), 1));
        assert!(map.insert("a".to_owned(), 2));
        assert!(!map.insert("a".to_owned(), 3));
        assert_eq!(map.get("a"), Some(&3));
        assert_eq!(map.remove("a"), Some(3));
        assert!(!map.contains_key("a"));
    }

    #[test]
    fn a_set_says_whether_it_changed() {
        let mut set = VecSet::new();
        assert!(set.insert(2u16));
        assert!(!set.insert(2));
        assert!(set.remove(&2));
        assert!(!set.remove(&2));
    }
}
