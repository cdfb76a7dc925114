//! In-server tests of the aggregates' internals (`cargo pgrx test`): interrupts reach the long
//! loops, and the support functions refuse to work outside an aggregate.

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use std::panic::AssertUnwindSafe;
    use std::time::{Duration, Instant};

    use pgrx::prelude::*;
    use pgrx::PgSqlErrorCode;

    use crate::aggregates::buf::{Buf, Env};
    use crate::aggregates::memory::{varlena_datum, PgEnv};
    use crate::aggregates::state::{sort_distinct, Acc, KState};
    use crate::aggregates::support::{deident_k_count_trans, deident_k_deserial};

    // utils/timeout.h, which pgrx does not bind: arms the statement_timeout timer, whose
    // SIGALRM handler (postgres.c, StatementTimeoutHandler) marks the interrupt as pending.
    // TimeoutId is a C enum; STATEMENT_TIMEOUT is its fourth member in PostgreSQL 13 to 17.
    const STATEMENT_TIMEOUT: u32 = 3;
    unsafe extern "C-unwind" {
        fn enable_timeout_after(id: u32, delay_ms: std::ffi::c_int);
    }

    fn arm_statement_timeout(ms: i32) {
        // SAFETY: the timeout module is initialized in every backend (InitPostgres registers
        // STATEMENT_TIMEOUT); arming it only sets a timer.
        unsafe { enable_timeout_after(STATEMENT_TIMEOUT, ms) }
    }

    fn env() -> PgEnv {
        // SAFETY: the test runs in a transaction, whose current memory context outlives it.
        PgEnv(unsafe { pg_sys::CurrentMemoryContext })
    }

    fn base64_of(b: &[u8]) -> String {
        base64_simd::STANDARD.encode_to_string(b)
    }

    /// n pseudo-random hashes (xorshift), unsorted.
    fn random_hashes(n: usize) -> Buf<PgEnv> {
        let mut b = Buf::with_capacity(env(), n).unwrap();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.push(x).unwrap();
        }
        b
    }

    /// Runs `f`, which must be stopped by the statement timeout; returns how long it ran.
    fn time_until_cancelled(f: impl FnOnce()) -> Duration {
        let start = Instant::now();
        let cancelled = PgTryBuilder::new(AssertUnwindSafe(|| {
            f();
            false
        }))
        .catch_when(PgSqlErrorCode::ERRCODE_QUERY_CANCELED, |_| true)
        .execute();
        assert!(cancelled, "the statement timeout did not interrupt the loop");
        start.elapsed()
    }

    /// A statement_timeout that expires while a k_count_distinct state of 8 million persons is
    /// sorted stops the sort within a chunk (65,536 hashes), long before it would end: the
    /// time is all in our loop, with no PostgreSQL code in between to check for interrupts.
    #[pg_test]
    fn statement_timeout_stops_a_large_sort() {
        // what sorting an eighth of the input takes, uninterrupted, in this build
        let mut eighth = random_hashes(1 << 20);
        let t = Instant::now();
        sort_distinct(&mut eighth, 0).unwrap();
        let eighth_time = t.elapsed();
        drop(eighth);

        let mut all = random_hashes(1 << 23);
        arm_statement_timeout(20);
        let took = time_until_cancelled(|| {
            sort_distinct(&mut all, 0).unwrap();
        });
        assert!(
            took < eighth_time,
            "stopped after {took:?}; an eighth of the sort takes {eighth_time:?}"
        );
    }

    /// Interrupts are acted on in the decoding of a large serialized state and in a merge:
    /// with the timeout already expired, the first check in the loop raises it.
    #[pg_test]
    fn statement_timeout_stops_decoding_and_merging() {
        let mut big = KState::new(Acc::Distinct, 0, env());
        for p in 0..(1u64 << 20) {
            big.add_person(p * 2).unwrap();
        }
        let mut bytes = vec![0u8; big.encoded_len().unwrap()];
        big.encode(&mut bytes);
        let mut other = KState::new(Acc::Distinct, 0, env());
        for p in 0..(1u64 << 20) {
            other.add_person(p * 3).unwrap();
        }
        other.compact().unwrap();

        let expire = || {
            arm_statement_timeout(1);
            std::thread::sleep(Duration::from_millis(20));
        };
        expire();
        time_until_cancelled(|| {
            KState::decode(&bytes, env()).unwrap();
        });
        expire();
        time_until_cancelled(|| {
            big.merge(&other).unwrap();
        });
        expire();
        time_until_cancelled(|| env().check_interrupts());
    }

    fn bytea(bytes: &[u8]) -> pg_sys::Datum {
        varlena_datum(bytes.len(), |out| out.copy_from_slice(bytes))
    }

    fn sqlstate_of(f: impl FnOnce()) -> Option<PgSqlErrorCode> {
        PgTryBuilder::new(AssertUnwindSafe(|| {
            f();
            None
        }))
        .catch_others(|e| match e {
            pg_sys::panic::CaughtError::PostgresError(r)
            | pg_sys::panic::CaughtError::ErrorReport(r)
            | pg_sys::panic::CaughtError::RustPanic { ereport: r, .. } => Some(r.sql_error_code()),
        })
        .execute()
    }

    /// Outside an aggregate the support functions refuse to make or read a state (0A000), and
    /// the state type's input refuses bytes that are not sealed (22P02). The regression tests
    /// (k_state.sql) try the same from SQL.
    #[pg_test]
    fn support_functions_refuse_to_work_outside_an_aggregate() {
        // a transition call with no aggregate behind it
        let person = bytea(b"someone@example.com");
        let got = sqlstate_of(|| unsafe {
            // SAFETY: the transition function reads its two arguments; the state is NULL.
            pgrx::direct_pg_extern_function_call_as_datum(
                deident_k_count_trans,
                &[None, Some(person)],
            );
        });
        assert_eq!(got, Some(PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED));

        // real state bytes (a k_count_distinct state of two persons), outside an aggregate
        let mut s = KState::new(Acc::Distinct, 0, env());
        s.add_person(1).unwrap();
        s.add_person(2).unwrap();
        let mut real = vec![0u8; s.encoded_len().unwrap()];
        s.encode(&mut real);
        let real = bytea(&real);
        let got = sqlstate_of(|| unsafe {
            // SAFETY: deserialize reads a bytea; its internal argument is unused.
            pgrx::direct_pg_extern_function_call_as_datum(deident_k_deserial, &[Some(real), None]);
        });
        assert_eq!(got, Some(PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED));

        // unsealed state bytes as a k_state's text: refused by the input function, which
        // takes only states sealed by a key of this ring
        let text = std::ffi::CString::new(base64_of(&[
            1, 2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0,
            0, 0, 0, 0, 0,
        ]))
        .unwrap();
        let got = sqlstate_of(|| unsafe {
            // SAFETY: the input function reads one C string.
            pgrx::direct_pg_extern_function_call_as_datum(
                crate::aggregates::expanded::deident_k_state_in,
                &[Some(pg_sys::Datum::from(text.as_ptr()))],
            );
        });
        assert_eq!(got, Some(PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION));
    }
}
