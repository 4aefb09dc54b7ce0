//! Three-valued matching: a rule field either matches the request, does not, or cannot be
//! decided without the request itself (its method, path, headers, source IP, JWT). Offline we
//! know only who calls (the mTLS identity), which host and which port; everything else is
//! `Depends`, carrying what it depends on so the answer can say so.

use std::collections::BTreeSet;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tri {
    Yes,
    No,
    /// Decided by these request attributes (e.g. `request method in [GET]`).
    Depends(BTreeSet<String>),
}

impl Tri {
    pub fn depends(what: impl Into<String>) -> Tri {
        Tri::Depends([what.into()].into())
    }

    pub fn from_bool(b: bool) -> Tri {
        if b { Tri::Yes } else { Tri::No }
    }

    /// AND (fields of one source, operation or rule): any No wins, then any Depends.
    pub fn all(items: impl IntoIterator<Item = Tri>) -> Tri {
        let mut on = BTreeSet::new();
        for t in items {
            match t {
                Tri::No => return Tri::No,
                Tri::Depends(d) => on.extend(d),
                Tri::Yes => {}
            }
        }
        if on.is_empty() {
            Tri::Yes
        } else {
            Tri::Depends(on)
        }
    }

    /// OR (sources, operations, rules, values of one field): any Yes wins, then any Depends.
    pub fn any(items: impl IntoIterator<Item = Tri>) -> Tri {
        let mut on = BTreeSet::new();
        for t in items {
            match t {
                Tri::Yes => return Tri::Yes,
                Tri::Depends(d) => on.extend(d),
                Tri::No => {}
            }
        }
        if on.is_empty() {
            Tri::No
        } else {
            Tri::Depends(on)
        }
    }

    /// NOT (the `not*` fields): an undecided match stays undecided.
    pub fn negate(self) -> Tri {
        match self {
            Tri::Yes => Tri::No,
            Tri::No => Tri::Yes,
            d => d,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Tri {
        Tri::depends(s)
    }

    #[test]
    fn all_is_and_with_no_first() {
        assert_eq!(Tri::all([]), Tri::Yes);
        assert_eq!(Tri::all([Tri::Yes, d("a")]), d("a"));
        assert_eq!(Tri::all([d("a"), Tri::No]), Tri::No);
        assert_eq!(
            Tri::all([d("a"), d("b")]),
            Tri::Depends(["a".to_string(), "b".to_string()].into())
        );
    }

    #[test]
    fn any_is_or_with_yes_first() {
        assert_eq!(Tri::any([]), Tri::No);
        assert_eq!(Tri::any([Tri::No, d("a")]), d("a"));
        assert_eq!(Tri::any([d("a"), Tri::Yes]), Tri::Yes);
    }

    #[test]
    fn negate_keeps_depends() {
        assert_eq!(Tri::Yes.negate(), Tri::No);
        assert_eq!(Tri::No.negate(), Tri::Yes);
        assert_eq!(d("a").negate(), d("a"));
    }
}
