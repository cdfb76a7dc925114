//! In-server tests (`cargo pgrx test`). The test cluster's postgresql.conf names the key file
//! `deident_test.keys` in its data directory (lib.rs, `pg_test`); each test writes it first.

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;
    use pgrx::PgSqlErrorCode;

    const KEYS: &str = "# test ring\n\
        k1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n\
        k2:202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f\n";

    /// Writes the ring atomically (tests run concurrently in several backends).
    fn write_keys() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = format!("deident_test.keys.{}", std::process::id());
        std::fs::write(&tmp, KEYS).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::rename(&tmp, "deident_test.keys").unwrap();
    }

    fn one(sql: &str) -> String {
        Spi::get_one::<String>(sql).unwrap().unwrap()
    }

    /// The SQLSTATE that `sql` fails with, or None.
    fn sqlstate_of(sql: &'static str, expected: PgSqlErrorCode) -> bool {
        PgTryBuilder::new(|| {
            Spi::run(sql).unwrap();
            false
        })
        .catch_when(expected, |_| true)
        .execute()
    }

    #[pg_test]
    fn spec_vectors_through_sql() {
        write_keys();
        assert_eq!(one("SELECT deident.key_fingerprint()"), "aa64df96b4a4ccb8");
        assert_eq!(
            one("SELECT deident.pseudonymize('alice@contoso.com')"),
            "v93e04Lf13mhIkvv9IgWVb"
        );
        assert_eq!(
            one("SELECT deident.pseudonymize('alice@contoso.com', 'hr')"),
            "9td7vVl8PG62dsYqhCVAZA"
        );
        assert_eq!(
            one("SELECT deident.pseudonymize('alice@contoso.com', length => 15)"),
            "f13mhIkvv9IgWVb"
        );
        assert_eq!(
            one("SELECT deident.pseudonymize_uuid('alice@contoso.com')::text"),
            "6f74462f-c288-82af-b180-f9c4c364f403"
        );
        assert_eq!(
            Spi::get_one::<i64>("SELECT deident.pseudonymize_bigint('alice@contoso.com')"),
            Ok(Some(8031121206449541807))
        );
        for (sql, expected) in [
            ("SELECT deident.pseudonymize_int(0)", -532415753),
            ("SELECT deident.pseudonymize_int(1001)", 1813204751),
            ("SELECT deident.pseudonymize_int(1001, 'hr')", -1331595961),
            ("SELECT deident.pseudonymize_int(-2147483648)", -1891228647),
        ] {
            assert_eq!(Spi::get_one::<i32>(sql), Ok(Some(expected)), "{sql}");
        }
    }

    fn hex_key(hex: &str) -> Vec<u8> {
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
    }

    /// What SQL must answer, computed in Rust from the key bytes: not through the cache.
    fn expected(key: &[u8], domain: &str, value: &str) -> String {
        let m = crate::pseudonym::DomainKey::derive(key, domain.as_bytes()).mac(value.as_bytes());
        let mut out = [0u8; 22];
        crate::pseudonym::encode_base62(&m, 22, &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[pg_test]
    fn cached_domain_keys_match_a_fresh_derivation() {
        write_keys();
        let k1 = hex_key("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
        let k2 = hex_key("202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f");
        // Many domains (past the backend's bound of 32), both keys, per-row domain and key
        // arguments (the call site's cache must notice each change), a domain too long to be
        // cached, run twice (the second statement starts from a warm cache).
        let sql = "SELECT g, k, d, deident.pseudonymize('v' || g, d, 22, k) FROM \
                   (SELECT g, k, CASE WHEN g % 7 = 0 THEN repeat('long', 40) ELSE 'd' || (g % 50) END AS d \
                      FROM generate_series(1, 200) g, unnest(ARRAY['k1', 'k2']) k) s ORDER BY g, k";
        for _ in 0..2 {
            let rows: Vec<(i32, String, String, String)> = Spi::connect(|client| {
                client
                    .select(sql, None, &[])
                    .unwrap()
                    .map(|r| {
                        (
                            r.get::<i32>(1).unwrap().unwrap(),
                            r.get::<String>(2).unwrap().unwrap(),
                            r.get::<String>(3).unwrap().unwrap(),
                            r.get::<String>(4).unwrap().unwrap(),
                        )
                    })
                    .collect()
            });
            assert_eq!(rows.len(), 400);
            for (g, k, d, got) in rows {
                let key = if k == "k1" { &k1 } else { &k2 };
                assert_eq!(got, expected(key, &d, &format!("v{g}")), "g={g} k={k} d={d}");
            }
        }
        // constant arguments: the call site resolves once and keeps the key
        assert_eq!(
            one("SELECT string_agg(DISTINCT deident.pseudonymize('same', 'hr', 22, 'k2'), ',') \
                 FROM generate_series(1, 1000)"),
            expected(&k2, "hr", "same")
        );
    }

    /// Nothing a caller passes is kept past its statement in unbounded size: the backend keeps
    /// at most 32 domains of at most 64 bytes, however many and however long the domains of a
    /// query are.
    #[pg_test]
    fn the_domain_cache_is_bounded() {
        write_keys();
        Spi::run(
            "SELECT count(deident.pseudonymize('v', repeat(g::text, 2000))) \
             FROM generate_series(1, 100) g",
        )
        .unwrap();
        Spi::run(
            "SELECT count(deident.pseudonymize('v', 'd' || g)) FROM generate_series(1, 100) g",
        )
        .unwrap();
        let (entries, bytes) = crate::keycache::cached_domains();
        assert!(entries <= 32, "{entries} domains kept");
        assert!(bytes <= 32 * crate::keycache::MAX_CACHED_DOMAIN, "{bytes} bytes of domains kept");
        assert!(entries > 0, "short domains are cached");
    }

    /// A long value is hashed in chunks with an interrupt check between them, so a cancel (or
    /// statement_timeout) stops it: with a cancel pending, the call fails with 57014 instead
    /// of finishing. Called directly (no executor around it, so no other interrupt check).
    #[pg_test]
    fn hashing_a_long_value_honours_a_cancel() {
        write_keys();
        let value = vec![b'x'; 8 << 20];
        let canceled = PgTryBuilder::new(|| unsafe {
            let bytea = pgrx::rust_byte_slice_to_bytea(&value);
            pg_sys::QueryCancelPending = 1;
            pg_sys::InterruptPending = 1;
            // Through fmgr (a guarded call), so that the ERROR comes back here as a Rust panic.
            pg_sys::DirectFunctionCall4Coll(
                Some(crate::functions::deident_pseudonymize_bytea),
                pg_sys::InvalidOid,
                pg_sys::Datum::from(bytea.into_pg()),
                "".into_datum().unwrap(),
                22i32.into_datum().unwrap(),
                "".into_datum().unwrap(),
            );
            false
        })
        .catch_when(PgSqlErrorCode::ERRCODE_QUERY_CANCELED, |_| true)
        .execute();
        assert!(canceled, "an 8 MB value was hashed to the end with a cancel pending");
    }

    #[pg_test]
    fn errors_carry_their_sqlstate() {
        write_keys();
        assert!(sqlstate_of(
            "SELECT deident.pseudonymize('a', '', 7)",
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE
        ));
        assert!(sqlstate_of(
            "SELECT deident.pseudonymize('a'::bytea, '', 44)",
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE
        ));
        assert!(sqlstate_of(
            "SELECT deident.pseudonymize_uuid('a', '', 'nokey')",
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT
        ));
        assert!(sqlstate_of(
            "SELECT deident.pseudonymize_int(1, '', 'nokey')",
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT
        ));
        assert!(sqlstate_of(
            "SELECT deident.key_fingerprint('nokey')",
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT
        ));
    }

    #[pg_test]
    fn settings_are_hidden_and_reserved() {
        let flags = Spi::get_one::<i64>(
            "SELECT count(*) FROM pg_settings WHERE name IN ('deident.key_file', 'deident.active_key')",
        );
        assert_eq!(flags, Ok(Some(0)), "secret settings must not be listed");
        assert!(sqlstate_of("SET deident.made_up = 1", PgSqlErrorCode::ERRCODE_INVALID_NAME));
    }

    #[pg_test]
    fn label_hook_errors_carry_their_sqlstate() {
        Spi::run("CREATE TABLE lbl_t (email text, org text)").unwrap();
        Spi::run("SECURITY LABEL FOR deident ON COLUMN lbl_t.email IS 'Identifier'").unwrap();
        assert_eq!(
            one("SELECT label FROM deident.personal_data WHERE table_name = 'lbl_t'"),
            "identifier"
        );
        assert!(sqlstate_of(
            "SECURITY LABEL FOR deident ON COLUMN lbl_t.org IS 'secret'",
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE
        ));
        assert!(sqlstate_of(
            "SECURITY LABEL FOR deident ON TABLE lbl_t IS 'identifier'",
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED
        ));
    }

    #[pg_test]
    fn aggregate_errors_carry_their_sqlstate() {
        assert!(sqlstate_of(
            "SELECT deident.k_sum(v, p) FROM (SELECT 1e308::float8 AS v, g::text AS p \
             FROM generate_series(1, 5) g) s",
            PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE
        ));
        // and the threshold itself, at the default k = 5
        assert_eq!(
            Spi::get_one::<i64>(
                "SELECT deident.k_count_distinct(p) FROM unnest(ARRAY['a','b','c','d']) p"
            ),
            Ok(None)
        );
        assert_eq!(
            Spi::get_one::<i64>(
                "SELECT deident.k_count_distinct(p) FROM unnest(ARRAY['a','b','c','d','e','a']) p"
            ),
            Ok(Some(5))
        );
    }

    /// Is `role` restricted, as the hooks see it after SET ROLE?
    fn restricted_as(role: &str) -> bool {
        Spi::run(&format!("SET ROLE {role}")).unwrap();
        let restricted = crate::enforcement::current_is_restricted();
        Spi::run("RESET ROLE").unwrap();
        restricted
    }

    #[pg_test]
    fn restriction_follows_the_label_and_membership_at_once() {
        Spi::run("CREATE ROLE rr_group").unwrap();
        Spi::run("CREATE ROLE rr_member IN ROLE rr_group").unwrap();
        Spi::run("CREATE ROLE rr_noinherit NOINHERIT IN ROLE rr_group").unwrap();
        assert!(!restricted_as("rr_group"));
        Spi::run("SECURITY LABEL FOR deident ON ROLE rr_group IS 'restricted'").unwrap();
        // the label's invalidation reaches this backend's caches at the end of the command
        assert!(restricted_as("rr_group"));
        assert!(restricted_as("rr_member"), "a member that inherits is restricted");
        assert!(!restricted_as("rr_noinherit"), "a NOINHERIT member is not, until SET ROLE");
        Spi::run("REVOKE rr_group FROM rr_member").unwrap();
        assert!(!restricted_as("rr_member"), "a membership change is seen at once");
        Spi::run("SECURITY LABEL FOR deident ON ROLE rr_group IS NULL").unwrap();
        assert!(!restricted_as("rr_group"));
        assert!(!crate::enforcement::current_is_restricted(), "a superuser never is");
        Spi::run("CREATE ROLE rr_super SUPERUSER").unwrap();
        assert!(sqlstate_of(
            "SECURITY LABEL FOR deident ON ROLE rr_super IS 'restricted'",
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE
        ));
    }

    fn labels_of(rel: &str, with_descendants: bool) -> Vec<(String, &'static str)> {
        let oid = Spi::get_one::<pg_sys::Oid>(&format!("SELECT '{rel}'::regclass::oid"))
            .unwrap()
            .unwrap();
        crate::enforcement::catalog::column_labels(oid, with_descendants)
            .iter()
            .map(|c| (c.name.clone(), c.label.as_str()))
            .collect()
    }

    #[pg_test]
    fn labels_cover_children_and_parents_read_through_children() {
        for sql in [
            "CREATE TABLE cl_p (id int, email text, org text) PARTITION BY LIST (id)",
            "CREATE TABLE cl_p1 PARTITION OF cl_p FOR VALUES IN (1)",
            "CREATE TABLE cl_i (email text, org text)",
            "CREATE TABLE cl_c (extra int) INHERITS (cl_i)",
            "CREATE TABLE cl_u (id int, email text) PARTITION BY LIST (id)",
            "CREATE TABLE cl_u1 PARTITION OF cl_u FOR VALUES IN (1)",
            "SECURITY LABEL FOR deident ON COLUMN cl_p.email IS 'identifier'",
            "SECURITY LABEL FOR deident ON COLUMN cl_p1.email IS 'sensitive'",
            "SECURITY LABEL FOR deident ON COLUMN cl_p1.org IS 'quasi_identifier'",
            "SECURITY LABEL FOR deident ON COLUMN cl_i.email IS 'identifier'",
            "SECURITY LABEL FOR deident ON COLUMN cl_u1.email IS 'identifier'",
        ] {
            Spi::run(sql).unwrap();
        }
        let id = |c: &str| (c.to_string(), "identifier");
        // a child's own label adds protection, never removes its parent's
        assert_eq!(
            labels_of("cl_p1", false),
            vec![id("email"), ("org".to_string(), "quasi_identifier")]
        );
        assert_eq!(labels_of("cl_c", false), vec![id("email")], "classic inheritance");
        // a parent is read through its children only when the scan includes them
        assert_eq!(labels_of("cl_u", false), vec![]);
        assert_eq!(labels_of("cl_u", true), vec![id("email")]);
        // detaching takes the parent's labels away at once
        Spi::run("ALTER TABLE cl_p DETACH PARTITION cl_p1").unwrap();
        assert_eq!(
            labels_of("cl_p1", false),
            vec![("email".to_string(), "sensitive"), ("org".to_string(), "quasi_identifier")]
        );
        // and a renamed column keeps its label
        Spi::run("ALTER TABLE cl_i RENAME COLUMN email TO mail").unwrap();
        assert_eq!(labels_of("cl_c", false), vec![id("mail")]);
    }
}
