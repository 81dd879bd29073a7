//! A first-in, first-out queue on two `Vec`s, for size: the session's event and message
//! queues were `VecDeque`s, whose ring buffer costs more code in the `.wasm` for each item
//! type (about 0.15 KB gzipped each) than two `Vec`s of the same type.

use alloc::vec::Vec;

/// Items come out in the order they went in at the back; `push_front` puts one back first.
/// Each item moves at most twice, so every operation takes constant time on average.
#[derive(Debug)]
pub(crate) struct Fifo<T> {
    /// The front of the queue, reversed: the next item out is the last.
    front: Vec<T>,
    /// The back of the queue, in order: new items go at its end.
    back: Vec<T>,
}

impl<T> Fifo<T> {
    pub(crate) const fn new() -> Self {
        Fifo {
            front: Vec::new(),
            back: Vec::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.front.len() + self.back.len()
    }

    pub(crate) fn push_back(&mut self, item: T) {
        self.back.push(item);
    }

    pub(crate) fn push_front(&mut self, item: T) {
        self.front.push(item);
    }

    /// The next item out.
    pub(crate) fn front(&mut self) -> Option<&T> {
        self.turn();
        self.front.last()
    }

    pub(crate) fn pop_front(&mut self) -> Option<T> {
        self.turn();
        self.front.pop()
    }

    /// With the front used up, the back becomes the front.
    fn turn(&mut self) {
        if self.front.is_empty() {
            core::mem::swap(&mut self.front, &mut self.back);
            self.front.reverse();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_in_first_out_with_push_front() {
        let mut q = Fifo::new();
        assert_eq!(q.pop_front(), None);
        q.push_back(1);
        q.push_back(2);
        assert_eq!(q.front(), Some(&1));
        assert_eq!(q.pop_front(), Some(1));
        q.push_back(3);
        q.push_front(0);
        assert_eq!(q.len(), 3);
        assert_eq!(q.pop_front(), Some(0));
        assert_eq!(q.pop_front(), Some(2));
        q.push_back(4);
        assert_eq!(q.pop_front(), Some(3));
        assert_eq!(q.pop_front(), Some(4));
        assert_eq!(q.pop_front(), None);
        assert_eq!(q.len(), 0);
    }
}
