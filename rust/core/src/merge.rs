//! Grouping of per-generation responses into per-input responses.
//!
//! When a provider cannot return several generations per request, distilabel sends one
//! request per (input, generation) and then merges every `n` consecutive responses into one.
//! distilabel re-slices the list from its start for every group, which is quadratic; this
//! walks the responses once.
//!
//! The merge is generic over a [`ResponseHost`], which knows how to read one response of the
//! host language (a Python dict in the binding, plain structs in the tests). The host's own
//! errors (a missing key, an empty list) are passed through unchanged, in the same order as
//! distilabel raises them, so users see the exception they would have seen.

use thiserror::Error;

/// Name of the statistics every merged response starts with, in this order.
pub const TOKEN_STATISTICS: [&str; 2] = ["input_tokens", "output_tokens"];

/// How the merge reads the responses of one host.
pub trait ResponseHost {
    /// One response, as produced by `agenerate`.
    type Response;
    /// A key of the response or of its statistics.
    type Key: Clone;
    /// Any value stored in a response.
    type Value;
    /// The host's own error (for Python: the exception raised while reading).
    type Error;

    /// Top-level keys of `response` other than `generations` and `statistics`, in order.
    fn extra_keys(&self, response: &Self::Response) -> Result<Vec<Self::Key>, Self::Error>;
    /// `response["generations"][0]`.
    fn first_generation(&self, response: &Self::Response) -> Result<Self::Value, Self::Error>;
    /// Calls `visit(key, response["statistics"][key][0])` for every statistic, in the
    /// response's order, stopping at the first error.
    fn visit_first_statistics(
        &self,
        response: &Self::Response,
        visit: &mut dyn FnMut(Self::Key, Self::Value) -> Result<(), Self::Error>,
    ) -> Result<(), Self::Error>;
    /// `response[key][0]`.
    fn first_extra(
        &self,
        response: &Self::Response,
        key: &Self::Key,
    ) -> Result<Self::Value, Self::Error>;
    /// A key for a statistic name (used for [`TOKEN_STATISTICS`]).
    fn key(&self, name: &'static str) -> Self::Key;
    /// Key equality as the host defines it.
    fn same_key(&self, a: &Self::Key, b: &Self::Key) -> Result<bool, Self::Error>;
}

/// One merged response: all the generations of one input with their statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct MergedResponse<K, V> {
    pub generations: Vec<V>,
    /// Statistics in first-seen order, always starting with [`TOKEN_STATISTICS`].
    pub statistics: Vec<(K, Vec<V>)>,
    /// Extra keys of the first response (e.g. `logprobs`), in its order.
    pub extras: Vec<(K, Vec<V>)>,
}

/// What [`merge_responses`] yields for a host.
pub type Merged<H> = MergedResponse<<H as ResponseHost>::Key, <H as ResponseHost>::Value>;
/// What [`merge_responses`] fails with for a host.
pub type HostMergeError<H> = MergeError<<H as ResponseHost>::Error>;
/// Statistics or extras under construction: key and the values gathered so far.
type Columns<H> = Vec<(<H as ResponseHost>::Key, Vec<<H as ResponseHost>::Value>)>;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum MergeError<E> {
    /// distilabel walks `range(0, len, n)`, which rejects a zero step.
    #[error("range() arg 3 must not be zero")]
    ZeroGroupSize,
    #[error("reading a response failed")]
    Host(E),
}

impl<E> From<E> for MergeError<E> {
    fn from(e: E) -> Self {
        MergeError::Host(e)
    }
}

/// Merges every `n` consecutive responses into one; the last group may be shorter.
///
/// Matches distilabel 1.5.3's `merge_responses`: only the first generation and the first
/// value of each statistic and extra key of each response are kept; extra keys are those of
/// the first response; a negative `n` gives no groups.
pub fn merge_responses<H: ResponseHost>(
    host: &H,
    responses: &[H::Response],
    n: i64,
) -> Result<Vec<Merged<H>>, HostMergeError<H>> {
    let Some(first) = responses.first() else {
        return Ok(Vec::new());
    };
    let extra_keys = host.extra_keys(first)?;
    if n == 0 {
        return Err(MergeError::ZeroGroupSize);
    }
    let Ok(group_size) = usize::try_from(n) else {
        return Ok(Vec::new());
    };

    let mut merged = Vec::with_capacity(responses.len().div_ceil(group_size));
    for group in responses.chunks(group_size) {
        merged.push(merge_group(host, group, &extra_keys)?);
    }
    Ok(merged)
}

fn merge_group<H: ResponseHost>(
    host: &H,
    group: &[H::Response],
    extra_keys: &[H::Key],
) -> Result<Merged<H>, HostMergeError<H>> {
    let mut generations = Vec::with_capacity(group.len());
    let mut statistics: Columns<H> = TOKEN_STATISTICS
        .iter()
        .map(|name| (host.key(name), Vec::with_capacity(group.len())))
        .collect();
    let mut extras: Columns<H> = Vec::with_capacity(extra_keys.len());

    for response in group {
        generations.push(host.first_generation(response)?);
        host.visit_first_statistics(response, &mut |key, value| {
            match position(host, &statistics, &key)? {
                Some(index) => statistics[index].1.push(value),
                None => statistics.push((key, vec![value])),
            }
            Ok(())
        })?;
        for (index, key) in extra_keys.iter().enumerate() {
            let value = host.first_extra(response, key)?;
            // Extra keys are appended in `extra_keys` order the first time each is read.
            match extras.get_mut(index) {
                Some((_, values)) => values.push(value),
                None => extras.push((key.clone(), vec![value])),
            }
        }
    }
    Ok(MergedResponse {
        generations,
        statistics,
        extras,
    })
}

/// Statistics are few (2-5 per response), so a linear scan beats hashing host keys.
fn position<H: ResponseHost>(
    host: &H,
    statistics: &Columns<H>,
    key: &H::Key,
) -> Result<Option<usize>, H::Error> {
    for (index, (existing, _)) in statistics.iter().enumerate() {
        if host.same_key(existing, key)? {
            return Ok(Some(index));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A response as plain data: `(generations, statistics, extras)`.
    #[derive(Clone, Default)]
    struct Resp {
        generations: Vec<&'static str>,
        statistics: Vec<(&'static str, Vec<i64>)>,
        extras: BTreeMap<&'static str, Vec<&'static str>>,
    }

    #[derive(Debug, PartialEq, Clone)]
    enum V {
        S(&'static str),
        I(i64),
    }

    #[derive(Debug, PartialEq)]
    enum Err {
        Index,
        Key(&'static str),
    }

    struct Host;

    impl ResponseHost for Host {
        type Response = Resp;
        type Key = &'static str;
        type Value = V;
        type Error = Err;

        fn extra_keys(&self, r: &Resp) -> Result<Vec<&'static str>, Err> {
            Ok(r.extras.keys().copied().collect())
        }
        fn first_generation(&self, r: &Resp) -> Result<V, Err> {
            r.generations.first().map(|g| V::S(g)).ok_or(Err::Index)
        }
        fn visit_first_statistics(
            &self,
            r: &Resp,
            visit: &mut dyn FnMut(&'static str, V) -> Result<(), Err>,
        ) -> Result<(), Err> {
            for (k, v) in &r.statistics {
                visit(k, V::I(*v.first().ok_or(Err::Index)?))?;
            }
            Ok(())
        }
        fn first_extra(&self, r: &Resp, key: &&'static str) -> Result<V, Err> {
            let values = r.extras.get(key).ok_or(Err::Key(key))?;
            values.first().map(|x| V::S(x)).ok_or(Err::Index)
        }
        fn key(&self, name: &'static str) -> &'static str {
            name
        }
        fn same_key(&self, a: &&'static str, b: &&'static str) -> Result<bool, Err> {
            Ok(a == b)
        }
    }

    fn resp(g: &'static str, stats: &[(&'static str, i64)]) -> Resp {
        Resp {
            generations: vec![g, "ignored"],
            statistics: stats.iter().map(|(k, v)| (*k, vec![*v, 99])).collect(),
            extras: BTreeMap::new(),
        }
    }

    #[test]
    fn empty_input_gives_no_groups_even_with_zero_n() {
        assert_eq!(merge_responses(&Host, &[], 0), Ok(vec![]));
    }

    #[test]
    fn groups_in_order_with_short_last_group() {
        let rs: Vec<Resp> = ["a", "b", "c"]
            .iter()
            .map(|g| resp(g, &[("input_tokens", 1), ("output_tokens", 2)]))
            .collect();
        let merged = merge_responses(&Host, &rs, 2).expect("merge");
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].generations, vec![V::S("a"), V::S("b")]);
        assert_eq!(merged[1].generations, vec![V::S("c")]);
        assert_eq!(
            merged[0].statistics,
            vec![
                ("input_tokens", vec![V::I(1), V::I(1)]),
                ("output_tokens", vec![V::I(2), V::I(2)])
            ]
        );
    }

    #[test]
    fn token_statistics_come_first_even_when_absent() {
        let rs = vec![resp("a", &[("x", 7)]), resp("b", &[("y", 8), ("x", 9)])];
        let merged = merge_responses(&Host, &rs, 2).expect("merge");
        let keys: Vec<_> = merged[0].statistics.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, vec!["input_tokens", "output_tokens", "x", "y"]);
        assert_eq!(merged[0].statistics[2].1, vec![V::I(7), V::I(9)]);
        assert_eq!(merged[0].statistics[3].1, vec![V::I(8)]);
        assert!(merged[0].statistics[0].1.is_empty());
    }

    #[test]
    fn extra_keys_come_from_the_first_response_only() {
        let mut a = resp("a", &[]);
        a.extras.insert("logprobs", vec!["la"]);
        let mut b = resp("b", &[]);
        b.extras.insert("logprobs", vec!["lb"]);
        b.extras.insert("other", vec!["dropped"]);
        let merged = merge_responses(&Host, &[a, b], 2).expect("merge");
        assert_eq!(
            merged[0].extras,
            vec![("logprobs", vec![V::S("la"), V::S("lb")])]
        );
    }

    #[test]
    fn missing_extra_key_in_later_response_is_the_hosts_error() {
        let mut a = resp("a", &[]);
        a.extras.insert("logprobs", vec!["la"]);
        let b = resp("b", &[]);
        assert_eq!(
            merge_responses(&Host, &[a, b], 2),
            Err(MergeError::Host(Err::Key("logprobs")))
        );
    }

    #[test]
    fn zero_group_size_is_rejected_and_negative_gives_nothing() {
        let rs = vec![resp("a", &[])];
        assert_eq!(
            merge_responses(&Host, &rs, 0),
            Err(MergeError::ZeroGroupSize)
        );
        assert_eq!(merge_responses(&Host, &rs, -3), Ok(vec![]));
    }

    #[test]
    fn empty_generation_list_is_the_hosts_error() {
        let mut a = resp("a", &[]);
        a.generations.clear();
        assert_eq!(
            merge_responses(&Host, &[a], 1),
            Err(MergeError::Host(Err::Index))
        );
    }
}
