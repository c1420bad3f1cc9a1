//! Postings lists (sorted series ids) and the Prometheus algorithm that turns
//! a list of matchers into the ids of the series they select.
//!
//! Both the head's in-memory index and a block's on-disk index implement
//! [`PostingsIndex`]; [`postings_for_matchers`] is written once over it.

use crate::matcher::{MatchOp, Matcher};

/// A label index that can answer the questions matcher selection needs.
pub trait PostingsIndex {
    /// The series id type (the head uses `u64` refs, blocks `u32` positions).
    type Id: Copy + Ord;

    /// Sorted ids of every series.
    fn all_postings(&self) -> Vec<Self::Id>;

    /// Every value of label `name`, sorted, without duplicates.
    fn label_values(&self, name: &str) -> Vec<String>;

    /// Sorted ids of the series with `name="value"`.
    fn postings(&self, name: &str, value: &str) -> Vec<Self::Id>;

    /// Sorted ids of the series whose `name` has one of `values`.
    fn postings_for_values(&self, name: &str, values: &[&str]) -> Vec<Self::Id> {
        union(values.iter().map(|v| self.postings(name, v)).collect())
    }
}

/// Ids of the series selected by all `matchers` (ANDed), with Prometheus
/// semantics: a matcher that matches the empty string also selects series
/// that lack the label. With no matchers, or only empty-matching ones, every
/// series is a candidate.
pub fn postings_for_matchers<I: PostingsIndex + ?Sized>(ix: &I, matchers: &[Matcher]) -> Vec<I::Id> {
    let mut its: Vec<Vec<I::Id>> = Vec::new();
    let mut not_its: Vec<Vec<I::Id>> = Vec::new();
    // Match-all matchers such as `foo=~".*"` constrain nothing.
    for m in matchers {
        if m.matches_empty() {
            if matches!(m.op, MatchOp::Regex) && m.value == ".*" {
                continue;
            }
            // Selects series without the label, plus those whose value matches.
            // Subtract those that have the label with a non-matching value.
            let inverse = m.inverse();
            not_its.push(postings_for_matcher(ix, &inverse));
        } else {
            its.push(postings_for_matcher(ix, m));
        }
    }
    let base = if its.is_empty() { ix.all_postings() } else { intersect(its) };
    if not_its.is_empty() {
        base
    } else {
        difference(&base, &union(not_its))
    }
}

/// Ids of the series that have label `m.name` with a value satisfying `m`
/// (series without the label are never included).
fn postings_for_matcher<I: PostingsIndex + ?Sized>(ix: &I, m: &Matcher) -> Vec<I::Id> {
    if let Some(values) = m.exact_values() {
        let values: Vec<&str> = values.into_iter().filter(|v| !v.is_empty()).collect();
        return ix.postings_for_values(&m.name, &values);
    }
    let vals = ix.label_values(&m.name);
    let matching: Vec<&str> = vals.iter().map(String::as_str).filter(|v| m.matches(v)).collect();
    ix.postings_for_values(&m.name, &matching)
}

/// Intersection of sorted lists.
pub fn intersect<T: Copy + Ord>(mut lists: Vec<Vec<T>>) -> Vec<T> {
    if lists.is_empty() {
        return Vec::new();
    }
    lists.sort_by_key(Vec::len);
    let mut acc = lists.swap_remove(0);
    for l in &lists {
        if acc.is_empty() {
            break;
        }
        acc = intersect_two(&acc, l);
    }
    acc
}

fn intersect_two<T: Copy + Ord>(small: &[T], big: &[T]) -> Vec<T> {
    let mut out = Vec::with_capacity(small.len());
    let mut rest = big;
    for &x in small {
        // Galloping would help for very skewed sizes; binary search on the
        // remaining suffix is close enough and simple.
        let i = rest.partition_point(|&y| y < x);
        rest = &rest[i..];
        match rest.first() {
            Some(&y) if y == x => out.push(x),
            Some(_) => {}
            None => break,
        }
    }
    out
}

/// Union of sorted lists, sorted and without duplicates.
pub fn union<T: Copy + Ord>(mut lists: Vec<Vec<T>>) -> Vec<T> {
    lists.retain(|l| !l.is_empty());
    match lists.len() {
        0 => Vec::new(),
        1 => lists.pop().unwrap_or_default(),
        2 => {
            let (a, b) = (&lists[0], &lists[1]);
            let mut out = Vec::with_capacity(a.len() + b.len());
            let (mut i, mut j) = (0, 0);
            while i < a.len() && j < b.len() {
                match a[i].cmp(&b[j]) {
                    std::cmp::Ordering::Less => {
                        out.push(a[i]);
                        i += 1;
                    }
                    std::cmp::Ordering::Greater => {
                        out.push(b[j]);
                        j += 1;
                    }
                    std::cmp::Ordering::Equal => {
                        out.push(a[i]);
                        i += 1;
                        j += 1;
                    }
                }
            }
            out.extend_from_slice(&a[i..]);
            out.extend_from_slice(&b[j..]);
            out
        }
        _ => {
            let mut out: Vec<T> = lists.concat();
            out.sort_unstable();
            out.dedup();
            out
        }
    }
}

/// Elements of sorted `a` that are not in sorted `b`.
pub fn difference<T: Copy + Ord>(a: &[T], b: &[T]) -> Vec<T> {
    let mut out = Vec::with_capacity(a.len());
    let mut j = 0;
    for &x in a {
        while j < b.len() && b[j] < x {
            j += 1;
        }
        if j < b.len() && b[j] == x {
            continue;
        }
        out.push(x);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Labels;
    use std::collections::BTreeMap;

    /// A naive index over a list of label sets, for checking the algorithm.
    struct Naive(Vec<Labels>);

    impl PostingsIndex for Naive {
        type Id = u32;
        fn all_postings(&self) -> Vec<u32> {
            (0..self.0.len() as u32).collect()
        }
        fn label_values(&self, name: &str) -> Vec<String> {
            let mut v: Vec<String> = self.0.iter().filter_map(|l| l.get(name).map(str::to_string)).collect();
            v.sort();
            v.dedup();
            v
        }
        fn postings(&self, name: &str, value: &str) -> Vec<u32> {
            (0..self.0.len() as u32).filter(|&i| self.0[i as usize].get(name) == Some(value)).collect()
        }
    }

    fn brute(series: &[Labels], ms: &[Matcher]) -> Vec<u32> {
        (0..series.len() as u32)
            .filter(|&i| ms.iter().all(|m| m.matches(series[i as usize].get(&m.name).unwrap_or(""))))
            .collect()
    }

    #[test]
    fn matches_brute_force_on_every_matcher_shape() {
        let mut series = Vec::new();
        for a in ["", "1", "2", "10"] {
            for b in ["", "x", "y"] {
                series.push(Labels::new([("__name__", "m"), ("a", a), ("b", b)]).unwrap());
            }
        }
        let mut cases: BTreeMap<usize, Vec<Matcher>> = BTreeMap::new();
        let ops = [MatchOp::Equal, MatchOp::NotEqual, MatchOp::Regex, MatchOp::NotRegex];
        let vals = ["", "1", "1|", "1|2", ".*", ".+", "1.*", "x", "nope"];
        let mut n = 0;
        for op in ops {
            for v in vals {
                for op2 in ops {
                    for v2 in ["", "x", "x|y", ".*"] {
                        cases.insert(n, vec![Matcher::new(op, "a", v).unwrap(), Matcher::new(op2, "b", v2).unwrap()]);
                        n += 1;
                    }
                }
            }
        }
        let ix = Naive(series.clone());
        for ms in cases.values() {
            assert_eq!(postings_for_matchers(&ix, ms), brute(&series, ms), "matchers {ms:?}");
        }
    }

    #[test]
    fn set_operations() {
        assert_eq!(intersect(vec![vec![1, 3, 5, 7], vec![3, 4, 5], vec![0, 3, 5, 9]]), vec![3, 5]);
        assert_eq!(union(vec![vec![1, 5], vec![2, 5], vec![9]]), vec![1, 2, 5, 9]);
        assert_eq!(union(vec![vec![1, 5], vec![2, 5]]), vec![1, 2, 5]);
        assert_eq!(difference(&[1, 2, 3, 4], &[2, 4, 6]), vec![1, 3]);
    }
}
