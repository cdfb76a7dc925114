//! The privacy ledger's rules and its file, pure (budget.rs keeps it in shared memory).
//!
//! Amounts are whole nano-ε (10^-9 ε), so that adding charges never rounds: a charge of ε is
//! ⌈ε·10^9⌉ units, never less than asked for.
//!
//! **Reservations.** What a role has spent lives in shared memory; what the file says is a
//! reservation, written and fsynced *before* any charge that needs it goes through, the way a
//! sequence logs values ahead of use (sequence.c, SEQ_LOG_VALS). After a crash the file is all
//! that is left and is read back as spent: the ledger can only count more than was spent (at
//! most one reservation step per role), never less. A step is 1/64 of the role's limit (or
//! the charge, if larger), so spending a whole budget costs at most about 64 file writes.

use sha2::{Digest, Sha256};

pub const UNITS_PER_EPSILON: f64 = 1e9;

/// ε in units, rounded up; None if not finite, negative, or beyond 1.8·10^10 ε.
pub fn units(epsilon: f64) -> Option<u64> {
    let u = (epsilon * UNITS_PER_EPSILON).ceil();
    (epsilon.is_finite() && epsilon >= 0.0 && u < u64::MAX as f64).then_some(u as u64)
}

pub fn epsilon(units: u64) -> f64 {
    units as f64 / UNITS_PER_EPSILON
}

/// One role's account. All zeros is an empty slot (role 0 is InvalidOid).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Account {
    pub role: u32,
    pub limit: u64,
    pub spent: u64,
    /// Durably reserved: spent ≤ reserved always holds for a loaded account.
    pub reserved: u64,
}

/// What a charge of `amount` needs.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// Within the reservation: spend it.
    Spend,
    /// Reserve up to this much first (durably), then spend.
    Reserve(u64),
    /// Past the limit: refuse. The units remaining.
    Exhausted(u64),
}

pub fn plan(a: &Account, amount: u64) -> Plan {
    let after = a.spent.saturating_add(amount);
    if after > a.limit {
        return Plan::Exhausted(a.limit.saturating_sub(a.spent));
    }
    if after <= a.reserved {
        return Plan::Spend;
    }
    let step = (a.limit / 64).max(amount);
    Plan::Reserve(a.reserved.saturating_add(step).max(after).min(a.limit))
}

const HEADER: &str = "pg_deident privacy ledger 1";

/// The file's text: a header, the timeline it was written on, one line per role, and a
/// SHA-256 of everything before it (a torn or edited file is refused, not half-read).
pub fn encode(timeline: u32, accounts: &[Account]) -> String {
    let mut s = format!("{HEADER}\ntimeline {timeline}\n");
    for a in accounts.iter().filter(|a| a.role != 0) {
        s.push_str(&format!("role {} limit {} reserved {}\n", a.role, a.limit, a.reserved));
    }
    let digest = Sha256::digest(s.as_bytes());
    s.push_str("sha256 ");
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s.push('\n');
    s
}

#[derive(Debug, PartialEq, Eq)]
pub struct Malformed;

/// Reads `encode`'s text back. Each role's spent is its reservation (what was reserved may
/// have been spent before the server stopped).
pub fn decode(text: &str) -> Result<(u32, Vec<Account>), Malformed> {
    let body_end = text.rfind("sha256 ").ok_or(Malformed)?;
    let (body, sum) = text.split_at(body_end);
    let digest = Sha256::digest(body.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    if sum.trim_end() != format!("sha256 {hex}") {
        return Err(Malformed);
    }
    let mut lines = body.lines();
    if lines.next() != Some(HEADER) {
        return Err(Malformed);
    }
    let timeline = lines
        .next()
        .and_then(|l| l.strip_prefix("timeline "))
        .and_then(|t| t.parse().ok())
        .ok_or(Malformed)?;
    let mut accounts = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.split(' ').collect();
        let [("role", role), ("limit", limit), ("reserved", reserved)] =
            [(f.first(), f.get(1)), (f.get(2), f.get(3)), (f.get(4), f.get(5))]
                .map(|(k, v)| (k.copied().unwrap_or(""), v.copied().unwrap_or("")))
        else {
            return Err(Malformed);
        };
        if f.len() != 6 {
            return Err(Malformed);
        }
        let num = |s: &str| s.parse::<u64>().map_err(|_| Malformed);
        let role = u32::try_from(num(role)?).map_err(|_| Malformed)?;
        let reserved = num(reserved)?;
        if role == 0 || accounts.iter().any(|a: &Account| a.role == role) {
            return Err(Malformed);
        }
        accounts.push(Account { role, limit: num(limit)?, spent: reserved, reserved });
    }
    Ok((timeline, accounts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_round_up() {
        assert_eq!(units(0.5), Some(500_000_000));
        // 0.1 as a float4 setting is 0.100000001490116...: one more unit, never fewer
        assert_eq!(units(f64::from(0.1f32)), Some(100_000_002));
        assert_eq!(units(1e-12), Some(1));
        assert_eq!(units(0.0), Some(0));
        for bad in [-1.0, f64::NAN, f64::INFINITY, 1e11] {
            assert_eq!(units(bad), None);
        }
    }

    #[test]
    fn charges_spend_reserve_ahead_and_stop_at_the_limit() {
        let mut a = Account { role: 10, limit: 6400, spent: 0, reserved: 0 };
        let mut writes = 0;
        let mut granted = 0;
        loop {
            match plan(&a, 30) {
                Plan::Spend => {}
                Plan::Reserve(r) => {
                    assert!(r >= a.spent + 30 && r <= a.limit);
                    a.reserved = r;
                    writes += 1;
                }
                Plan::Exhausted(left) => {
                    assert_eq!(left, 6400 - a.spent);
                    assert!(left < 30);
                    break;
                }
            }
            a.spent += 30;
            granted += 1;
            assert!(a.spent <= a.reserved);
        }
        assert_eq!(granted, 6400 / 30);
        // one write per 1/64 of the limit (100 units), at most
        assert!(writes <= 65, "{writes}");
        // a charge larger than the step reserves itself
        let b = Account { role: 1, limit: 1000, spent: 0, reserved: 0 };
        assert_eq!(plan(&b, 900), Plan::Reserve(900));
        assert_eq!(plan(&b, 1001), Plan::Exhausted(1000));
        // a lowered limit leaves nothing, not a negative figure
        let c = Account { role: 1, limit: 10, spent: 50, reserved: 60 };
        assert_eq!(plan(&c, 1), Plan::Exhausted(0));
    }

    #[test]
    fn the_file_round_trips_and_counts_reservations_as_spent() {
        let accounts = [
            Account { role: 16384, limit: 5_000_000_000, spent: 10, reserved: 78_125_000 },
            Account::default(),
            Account { role: 16390, limit: 0, spent: 0, reserved: 0 },
        ];
        let text = encode(3, &accounts);
        assert!(text.starts_with("pg_deident privacy ledger 1\ntimeline 3\nrole 16384 limit 5000000000 reserved 78125000\n"));
        let (tl, back) = decode(&text).unwrap();
        assert_eq!(tl, 3);
        assert_eq!(back.len(), 2);
        assert_eq!(
            back[0],
            Account { role: 16384, limit: 5_000_000_000, spent: 78_125_000, reserved: 78_125_000 }
        );
        // any change, truncation or duplicate is refused
        assert_eq!(decode(&text.replace("78125000", "78125001")), Err(Malformed));
        assert_eq!(decode(&text[..text.len() - 2]), Err(Malformed));
        assert_eq!(decode(""), Err(Malformed));
        let dup = encode(1, &[accounts[0], accounts[0]]);
        assert_eq!(decode(&dup), Err(Malformed));
        assert_eq!(decode(&encode(1, &[])).unwrap(), (1, vec![]));
    }
}
