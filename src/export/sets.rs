//! A `{tenant}` export's file sets: `name = "alerts-{tenant}"` expanded over the tenants it
//! covers, each set an ordinary export of its own name that holds one tenant's rows.
//!
//! The expansion happens when the export runs, over the tenants configured at that moment, so a
//! tenant added on reload gets its files at the next run without a new `[[exports]]` block. The
//! config checks that no two sets (nor a set and another export) share a name; this module makes
//! sure a tenant name can never place a file outside the export's directory, whatever the
//! rules for tenant names become: a name that is not made of letters, digits, `-` and `_` is
//! refused for that set (the others are written), never encoded into something a customer would
//! not recognise.

use crate::config::ExportConfig;

use super::error::ExportError;

/// `(tenant, that tenant's set)` for each tenant `e` covers among `configured`, in config order;
/// a tenant whose name is not safe in a file name is an error for its set alone.
pub(crate) fn expand<'a>(
    e: &'a ExportConfig,
    configured: &'a [String],
) -> impl Iterator<Item = Result<(String, ExportConfig), (String, ExportError)>> + 'a {
    e.tenants_of(configured).map(move |t| {
        if !safe_in_file_name(t) {
            return Err((
                t.to_owned(),
                ExportError::UnsafeTenantName {
                    export: e.name.clone(),
                    tenant: t.to_owned(),
                },
            ));
        }
        let mut set = e.clone();
        set.name = e.name_for(t);
        set.per_tenant = false;
        set.filter.tenants = vec![t.to_owned()];
        Ok((t.to_owned(), set))
    })
}

/// Letters, digits, `-` and `_` (what `[[tenants]] name` allows today): no `/`, no `..`, no
/// NUL, no leading `.`, nothing a shell or a spreadsheet reads specially.
fn safe_in_file_name(tenant: &str) -> bool {
    !tenant.is_empty()
        && tenant.len() <= 64
        && tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ExportFormat;

    fn per_tenant(listed: &[&str]) -> ExportConfig {
        let mut e = ExportConfig {
            name: "alerts-{tenant}".into(),
            per_tenant: true,
            ..ExportConfig::ad_hoc(ExportFormat::Csv)
        };
        e.filter.tenants = listed.iter().map(|t| (*t).to_owned()).collect();
        e
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|t| (*t).to_owned()).collect()
    }

    #[test]
    fn one_set_per_covered_tenant_each_filtered_to_it() {
        let configured = names(&["contoso", "fabrikam", "tailspin"]);
        let e = per_tenant(&["tailspin", "contoso"]);
        let sets: Vec<_> = expand(&e, &configured).map(Result::unwrap).collect();
        let got: Vec<_> = sets
            .iter()
            .map(|(t, s)| {
                (
                    t.as_str(),
                    s.name.as_str(),
                    s.filter.tenants.clone(),
                    s.per_tenant,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("contoso", "alerts-contoso", names(&["contoso"]), false),
                ("tailspin", "alerts-tailspin", names(&["tailspin"]), false),
            ]
        );
        assert_eq!(expand(&per_tenant(&[]), &configured).count(), 3);
    }

    /// A tenant name that could leave the directory (or hide a file) is refused for its set
    /// alone, whatever validated it.
    #[test]
    fn a_tenant_name_never_escapes_the_directory() {
        for bad in ["../evil", "a/b", ".hidden", "..", "a\0b", "", "a b", "é"] {
            let configured = names(&["ok", bad]);
            let out: Vec<_> = expand(&per_tenant(&[]), &configured).collect();
            assert!(out[0].is_ok(), "{bad:?}");
            match &out[1] {
                Err((t, ExportError::UnsafeTenantName { tenant, .. })) => {
                    assert_eq!((t.as_str(), tenant.as_str()), (bad, bad));
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }
}
