//! Fixed-size chunking of a stream, with distilabel's `grouper` policies for the last,
//! incomplete chunk.
//!
//! distilabel's `grouper` is the itertools recipe (`zip`/`zip_longest` over `n` copies of one
//! iterator). The observable contract kept here: chunks are pulled lazily; the source is never
//! polled again after it is exhausted; `fill` pads the last chunk, `ignore` drops it and
//! `strict` fails with `zip(strict=True)`'s message.

use std::str::FromStr;

use thiserror::Error;

/// What to do with a last chunk shorter than `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incomplete {
    Fill,
    Strict,
    Ignore,
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("Expected fill, strict, or ignore")]
pub struct UnknownIncompletePolicy;

impl FromStr for Incomplete {
    type Err = UnknownIncompletePolicy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fill" => Ok(Self::Fill),
            "strict" => Ok(Self::Strict),
            "ignore" => Ok(Self::Ignore),
            _ => Err(UnknownIncompletePolicy),
        }
    }
}

/// The last chunk was short under the `strict` policy. `received` items had been read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ChunkError<E> {
    #[error("{}", short_chunk_message(*.received))]
    ShortChunk { received: usize },
    #[error("reading the source failed")]
    Source(E),
}

/// `zip(strict=True)` names the first argument that ran out and the ones before it.
fn short_chunk_message(received: usize) -> String {
    let exhausted = received + 1;
    if received == 1 {
        format!("zip() argument {exhausted} is shorter than argument 1")
    } else {
        format!("zip() argument {exhausted} is shorter than arguments 1-{received}")
    }
}

/// Pulls chunks of `size` items from a fallible source (`Ok(None)` means exhausted).
pub struct Chunker {
    size: usize,
    policy: Incomplete,
    exhausted: bool,
}

impl Chunker {
    pub fn new(size: usize, policy: Incomplete) -> Self {
        Self {
            size,
            policy,
            // Zero copies of the iterator: `zip()` and `zip_longest()` yield nothing.
            exhausted: size == 0,
        }
    }

    /// The next chunk, or `Ok(None)` once the source is done. `fill` makes the padding
    /// used by [`Incomplete::Fill`].
    pub fn next_chunk<T, E>(
        &mut self,
        mut pull: impl FnMut() -> Result<Option<T>, E>,
        fill: impl FnMut() -> T,
    ) -> Result<Option<Vec<T>>, ChunkError<E>> {
        if self.exhausted {
            return Ok(None);
        }
        let mut chunk = Vec::with_capacity(self.size);
        while chunk.len() < self.size {
            match pull().map_err(ChunkError::Source)? {
                Some(item) => chunk.push(item),
                None => {
                    self.exhausted = true;
                    break;
                }
            }
        }
        if chunk.len() == self.size {
            return Ok(Some(chunk));
        }
        if chunk.is_empty() {
            return Ok(None);
        }
        match self.policy {
            Incomplete::Ignore => Ok(None),
            Incomplete::Strict => Err(ChunkError::ShortChunk {
                received: chunk.len(),
            }),
            Incomplete::Fill => {
                chunk.resize_with(self.size, fill);
                Ok(Some(chunk))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(items: &str, size: usize, policy: Incomplete) -> Result<Vec<String>, String> {
        let mut source = items.chars();
        let mut chunker = Chunker::new(size, policy);
        let mut out = Vec::new();
        loop {
            match chunker.next_chunk(|| Ok::<_, ()>(source.next()), || 'x') {
                Ok(Some(chunk)) => out.push(chunk.into_iter().collect()),
                Ok(None) => return Ok(out),
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    #[test]
    fn policies_match_the_itertools_recipe() {
        assert_eq!(
            chunks("ABCDEFG", 3, Incomplete::Fill),
            Ok(vec!["ABC".into(), "DEF".into(), "Gxx".into()])
        );
        assert_eq!(
            chunks("ABCDEFG", 3, Incomplete::Ignore),
            Ok(vec!["ABC".into(), "DEF".into()])
        );
        assert_eq!(
            chunks("ABCDEFG", 3, Incomplete::Strict),
            Err("zip() argument 2 is shorter than argument 1".into())
        );
        assert_eq!(
            chunks("ABCDE", 3, Incomplete::Strict),
            Err("zip() argument 3 is shorter than arguments 1-2".into())
        );
        assert_eq!(
            chunks("ABCDEF", 3, Incomplete::Strict),
            Ok(vec!["ABC".into(), "DEF".into()])
        );
    }

    #[test]
    fn zero_size_yields_nothing_and_never_pulls() {
        let mut chunker = Chunker::new(0, Incomplete::Fill);
        let pulled = chunker.next_chunk(|| -> Result<Option<i32>, ()> { Err(()) }, || 1);
        assert_eq!(pulled, Ok(None));
    }

    #[test]
    fn source_is_not_polled_after_exhaustion() {
        let mut calls = 0;
        let mut chunker = Chunker::new(2, Incomplete::Fill);
        let mut pull = || {
            calls += 1;
            Ok::<_, ()>(if calls == 1 { Some(1) } else { None })
        };
        assert_eq!(chunker.next_chunk(&mut pull, || 0), Ok(Some(vec![1, 0])));
        assert_eq!(chunker.next_chunk(&mut pull, || 0), Ok(None));
        assert_eq!(calls, 2);
    }

    #[test]
    fn unknown_policy_has_distilabels_message() {
        assert_eq!(
            "both".parse::<Incomplete>().map_err(|e| e.to_string()),
            Err("Expected fill, strict, or ignore".to_string())
        );
    }
}
