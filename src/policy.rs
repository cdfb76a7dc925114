//! The label policy, in one place and with no PostgreSQL types (SPEC "Security labels",
//! "Restricted roles"): the vocabulary, which label outranks which, what may carry a label and
//! who may set one. The provider (`labels`), the `personal_data` view and `k_anonymity` (through
//! `deident._column_labels`) and the enforcement hooks (`enforcement`) all decide through it;
//! `enforcement::catalog` reads the labels from the catalog.

/// A column label. The order of the variants is the ranking: what identifies outranks what is
/// only protected, so a column that carries several labels (its own, and those of the
/// same-named column of its ancestors) counts as the first of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Label {
    Identifier,
    QuasiIdentifier,
    Sensitive,
}

impl Label {
    pub const ALL: [Label; 3] = [Label::Identifier, Label::QuasiIdentifier, Label::Sensitive];

    /// The canonical (lower-case) spelling, as pg_deident reports it.
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Identifier => "identifier",
            Label::QuasiIdentifier => "quasi_identifier",
            Label::Sensitive => "sensitive",
        }
    }

    /// A column label in any case; nothing else is tolerated (' identifier' is a typo to
    /// report, not to guess at).
    pub fn parse(label: &str) -> Option<Label> {
        Label::ALL.into_iter().find(|l| l.as_str().eq_ignore_ascii_case(label))
    }

    /// The stronger of two labels of one column.
    pub fn strongest(self, other: Label) -> Label {
        self.min(other)
    }
}

/// The one role label: the role sees de-identified data only.
pub const RESTRICTED: &str = "restricted";

/// Is `label` the role label (in any case)?
pub fn is_restricted_label(label: &str) -> bool {
    RESTRICTED.eq_ignore_ascii_case(label)
}

/// The relation kinds whose columns can be labelled: tables, partitioned tables, foreign
/// tables, views and materialized views (pg_class.h RELKIND_*).
pub const LABELLED_RELKINDS: &[u8] = b"rpfvm";

/// What a label statement asks for, as far as the check needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A column of a relation of this relkind.
    Column(u8),
    /// A relation itself (objsubid 0).
    Relation,
    /// A role; `superuser` tells whether it is one.
    Role {
        superuser: bool,
    },
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelError {
    NotSuperuser,
    UnknownColumnLabel(String),
    UnknownRoleLabel(String),
    ColumnOfUnsupportedRelation,
    RestrictedSuperuser,
    /// A column of a relation whose owner is restricted: an owner can change a relation in
    /// ways no query shows (its indexes, policies, the functions they call).
    OwnerRestricted,
    /// The role label on a role that owns (or inherits from an owner of) a labelled relation.
    RestrictedOwner,
    NotAColumn,
}

/// Decides whether `label` (None: removal) may be put on `target` by a caller who is a
/// superuser or not. Only a superuser labels anything: the labels are the DBA's statement of
/// what is personal data and of who sees only pseudonyms, so neither a table owner (who could
/// unlabel a column to read it) nor a restricted role (which could label a column of its own
/// table and read its guesses back pseudonymized) may set them. A restricted role is never a
/// superuser, so this one rule covers both.
pub fn check(target: Target, label: Option<&str>, superuser: bool) -> Result<(), LabelError> {
    if !superuser {
        return Err(LabelError::NotSuperuser);
    }
    let Some(label) = label else {
        // Removing a label is allowed to whoever may set it: a column label cannot make
        // anything less protected than it was when checked, and removing the role label is
        // the DBA lifting a restriction.
        return Ok(());
    };
    match target {
        Target::Column(relkind) => {
            if !LABELLED_RELKINDS.contains(&relkind) {
                return Err(LabelError::ColumnOfUnsupportedRelation);
            }
            Label::parse(label)
                .map(|_| ())
                .ok_or_else(|| LabelError::UnknownColumnLabel(label.to_string()))
        }
        Target::Role { superuser } => {
            if !is_restricted_label(label) {
                Err(LabelError::UnknownRoleLabel(label.to_string()))
            } else if superuser {
                // A superuser bypasses every check the enforcement makes (and may change
                // the labels): a restriction on one would be a promise nobody keeps.
                Err(LabelError::RestrictedSuperuser)
            } else {
                Ok(())
            }
        }
        Target::Relation | Target::Other => Err(LabelError::NotAColumn),
    }
}

/// The effective labels of a relation's columns, from the labels found on it and on its
/// relatives (ancestors, and for a scan that includes them, descendants), matched by column
/// name: `found` gives, for each column name, the labels found; the result keeps the strongest
/// per name.
pub fn strongest_by_name<'a>(
    found: impl IntoIterator<Item = (&'a str, Label)>,
) -> Vec<(&'a str, Label)> {
    let mut out: Vec<(&'a str, Label)> = Vec::new();
    for (name, label) in found {
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, l)) => *l = l.strongest(label),
            None => out.push((name, label)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_labels_are_case_insensitive_and_exact() {
        for (given, canonical) in [
            ("identifier", Some(Label::Identifier)),
            ("IDENTIFIER", Some(Label::Identifier)),
            ("Quasi_Identifier", Some(Label::QuasiIdentifier)),
            ("sensitive", Some(Label::Sensitive)),
            (" identifier", None),
            ("quasi-identifier", None),
            ("restricted", None),
            ("", None),
        ] {
            assert_eq!(Label::parse(given), canonical, "{given:?}");
        }
        for l in Label::ALL {
            assert_eq!(Label::parse(l.as_str()), Some(l));
        }
    }

    #[test]
    fn identifier_outranks_the_others() {
        use Label::*;
        assert_eq!(Sensitive.strongest(Identifier), Identifier);
        assert_eq!(QuasiIdentifier.strongest(Sensitive), QuasiIdentifier);
        assert_eq!(
            strongest_by_name([("a", Sensitive), ("b", QuasiIdentifier), ("a", Identifier)]),
            vec![("a", Identifier), ("b", QuasiIdentifier)]
        );
    }

    #[test]
    fn each_target_is_checked() {
        let col = Target::Column(b'r');
        let role = Target::Role { superuser: false };
        assert_eq!(check(col, Some("Sensitive"), true), Ok(()));
        assert_eq!(check(Target::Column(b'p'), Some("identifier"), true), Ok(()));
        assert_eq!(check(Target::Column(b'v'), Some("identifier"), true), Ok(()));
        assert_eq!(check(col, None, true), Ok(()));
        assert_eq!(
            check(col, Some("secret"), true),
            Err(LabelError::UnknownColumnLabel("secret".into()))
        );
        assert_eq!(
            check(col, Some("restricted"), true),
            Err(LabelError::UnknownColumnLabel("restricted".into()))
        );
        assert_eq!(
            check(Target::Column(b'i'), Some("identifier"), true),
            Err(LabelError::ColumnOfUnsupportedRelation)
        );
        assert_eq!(check(Target::Relation, Some("identifier"), true), Err(LabelError::NotAColumn));
        assert_eq!(check(Target::Other, Some("identifier"), true), Err(LabelError::NotAColumn));
        assert_eq!(check(role, Some("restricted"), true), Ok(()));
        assert_eq!(check(role, Some("RESTRICTED"), true), Ok(()));
        assert_eq!(
            check(role, Some("identifier"), true),
            Err(LabelError::UnknownRoleLabel("identifier".into()))
        );
        assert_eq!(
            check(Target::Role { superuser: true }, Some("restricted"), true),
            Err(LabelError::RestrictedSuperuser)
        );
        assert_eq!(check(Target::Role { superuser: true }, None, true), Ok(()));
        assert_eq!(check(role, None, true), Ok(()));
        assert_eq!(check(role, Some("restricted"), false), Err(LabelError::NotSuperuser));
        assert_eq!(check(role, None, false), Err(LabelError::NotSuperuser));
        assert_eq!(check(col, Some("identifier"), false), Err(LabelError::NotSuperuser));
        assert_eq!(check(col, None, false), Err(LabelError::NotSuperuser));
    }
}
