//! The key ring: parsing and loading the file named by `deident.key_file` (SPEC "Keys").
//!
//! Pure Rust (std only) so it runs under `cargo test`. Nothing here puts key bytes or file
//! content into an error: a malformed line is reported by number and by what is wrong with it.

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use zeroize::Zeroizing;

/// Key ids: SPEC's `[A-Za-z0-9_-]{1,32}`.
pub const MAX_KEY_ID_LEN: usize = 32;
/// Keys are at least 32 bytes (256 bits, the HMAC-SHA256 output size; RFC 2104 section 3).
pub const MIN_KEY_BYTES: usize = 32;
/// A key ring is a handful of lines; refusing anything larger bounds what a wrong path (say, a
/// log file) makes the backend read.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

pub struct Key {
    pub id: String,
    pub bytes: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for Key {
    // Never print key bytes, even in a debug dump.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key").field("id", &self.id).finish_non_exhaustive()
    }
}

/// What is wrong with one line of a key file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineProblem {
    NoColon,
    BadKeyId,
    BadHex,
    OddHex,
    ShortKey,
    DuplicateKeyId,
}

impl LineProblem {
    pub fn describe(self) -> &'static str {
        match self {
            LineProblem::NoColon => "it is not of the form KEY_ID:HEX",
            LineProblem::BadKeyId => {
                "its key id is not 1 to 32 characters from A-Z, a-z, 0-9, \"_\" and \"-\""
            }
            LineProblem::BadHex => "its key contains a character that is not a hex digit",
            LineProblem::OddHex => "its key has an odd number of hex digits",
            LineProblem::ShortKey => "its key is shorter than 64 hex digits (32 bytes)",
            LineProblem::DuplicateKeyId => "its key id is used by an earlier line",
        }
    }
}

/// Why a key file cannot be used. `Display` gives the message; none of them contain the path,
/// which the caller adds only where the reader may see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileProblem {
    Missing,
    Unreadable(io::ErrorKind),
    NotRegularFile,
    TooLarge,
    /// Owned by neither the server's user nor root.
    WrongOwner,
    /// Group or world permission bits are set (the mode, for the detail).
    GroupOrWorldAccess(u32),
    Line(usize, LineProblem),
    NoKeys,
    /// Written to between the check and the end of the read.
    ChangedWhileRead,
}

/// A parsed key file. Keys keep the file's order; the first is the default active key.
#[derive(Debug)]
pub struct KeyRing {
    pub keys: Vec<Key>,
}

impl KeyRing {
    pub fn find(&self, id: &[u8]) -> Option<usize> {
        self.keys.iter().position(|k| k.id.as_bytes() == id)
    }
}

fn valid_key_id(id: &[u8]) -> bool {
    (1..=MAX_KEY_ID_LEN).contains(&id.len())
        && id.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn parse_line(line: &[u8]) -> Result<Key, LineProblem> {
    let colon = line.iter().position(|&b| b == b':').ok_or(LineProblem::NoColon)?;
    let (id, hex) = (line[..colon].trim_ascii(), line[colon + 1..].trim_ascii());
    if !valid_key_id(id) {
        return Err(LineProblem::BadKeyId);
    }
    if !hex.iter().all(|b| b.is_ascii_hexdigit()) {
        return Err(LineProblem::BadHex);
    }
    if hex.len() % 2 != 0 {
        return Err(LineProblem::OddHex);
    }
    if hex.len() < 2 * MIN_KEY_BYTES {
        return Err(LineProblem::ShortKey);
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(hex.len() / 2));
    for pair in hex.chunks_exact(2) {
        // Both digits were checked above.
        let (Some(hi), Some(lo)) = (hex_value(pair[0]), hex_value(pair[1])) else {
            return Err(LineProblem::BadHex);
        };
        bytes.push(hi << 4 | lo);
    }
    // The id was checked to be ASCII.
    let id = String::from_utf8_lossy(id).into_owned();
    Ok(Key { id, bytes })
}

/// Parses a key file's content: one `KEY_ID:HEX` a line; blank lines and lines whose first
/// non-blank character is `#` are skipped. Line numbers are 1-based, as an editor shows them.
pub fn parse(content: &[u8]) -> Result<KeyRing, FileProblem> {
    let mut keys: Vec<Key> = Vec::new();
    for (index, raw) in content.split(|&b| b == b'\n').enumerate() {
        let line = raw.trim_ascii();
        if line.is_empty() || line[0] == b'#' {
            continue;
        }
        let lineno = index + 1;
        let key = parse_line(line).map_err(|p| FileProblem::Line(lineno, p))?;
        if keys.iter().any(|k| k.id == key.id) {
            return Err(FileProblem::Line(lineno, LineProblem::DuplicateKeyId));
        }
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(FileProblem::NoKeys);
    }
    Ok(KeyRing { keys })
}

/// What identifies one version of the file: a change of content, mode or owner (`chmod`,
/// `chown`, an editor's rename-over) changes at least one field, so the cache re-reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    dev: u64,
    ino: u64,
    size: u64,
    mode: u32,
    uid: u32,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileStamp {
    fn of(meta: &fs::Metadata) -> FileStamp {
        FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mode: meta.mode(),
            uid: meta.uid(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

impl FileStamp {
    /// The same file with the same content as far as the inode tells: a write changes the
    /// size or the mtime.
    fn same_content(&self, other: &FileStamp) -> bool {
        (self.dev, self.ino, self.size, self.mtime)
            == (other.dev, other.ino, other.size, other.mtime)
    }
}

/// The file's stamp by path (one `stat`): what the cache compares, once per statement, to
/// decide whether to read the file again.
pub fn stamp(path: &Path) -> Result<FileStamp, FileProblem> {
    fs::metadata(path).map(|m| FileStamp::of(&m)).map_err(io_problem)
}

fn io_problem(e: io::Error) -> FileProblem {
    match e.kind() {
        io::ErrorKind::NotFound => FileProblem::Missing,
        kind => FileProblem::Unreadable(kind),
    }
}

/// Checks ownership and mode the way PostgreSQL checks `ssl_key_file` (be-secure-common.c,
/// `check_ssl_key_file_permissions`), but stricter: SPEC refuses group access even for a
/// root-owned file, since the key must be out of every other account's sight.
pub fn check_stamp(st: &FileStamp, server_uid: u32) -> Result<(), FileProblem> {
    const S_IFMT: u32 = 0o170000;
    const S_IFREG: u32 = 0o100000;
    if st.mode & S_IFMT != S_IFREG {
        return Err(FileProblem::NotRegularFile);
    }
    if st.uid != server_uid && st.uid != 0 {
        return Err(FileProblem::WrongOwner);
    }
    if st.mode & 0o077 != 0 {
        return Err(FileProblem::GroupOrWorldAccess(st.mode & 0o7777));
    }
    if st.size > MAX_FILE_BYTES {
        return Err(FileProblem::TooLarge);
    }
    Ok(())
}

/// Opens the file once, checks owner, mode, type and size on the open descriptor (`fstat`),
/// and reads at most the size that was checked: there is no window between the check and the
/// read in which the path could be pointed at another file. Returns the ring and the stamp
/// of what was read. The content buffer is wiped when dropped.
pub fn load(path: &Path, server_uid: u32) -> Result<(KeyRing, FileStamp), FileProblem> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .read(true)
        // O_NONBLOCK: opening a FIFO named as the key file must not wait for a writer; the type
        // check then refuses it.
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io_problem)?;
    let st = FileStamp::of(&file.metadata().map_err(io_problem)?);
    check_stamp(&st, server_uid)?;
    // One byte more than was checked, to notice a file that grew since the fstat.
    let mut content = Zeroizing::new(Vec::with_capacity(st.size as usize + 1));
    let mut file = file;
    (&mut file).take(st.size + 1).read_to_end(&mut content).map_err(io_problem)?;
    // A file rewritten in place while we read (cp, an editor that does not rename) can give a
    // short or torn read that still parses, as a wrong ring: the length must be what was
    // checked and the content unchanged since (size and mtime of the open file; not its ctime,
    // which a rename over it or a chmod also changes, leaving what we read intact). Otherwise
    // this statement fails and the next one reads the file again. Replacing the file by a
    // rename is atomic.
    let after = FileStamp::of(&file.metadata().map_err(io_problem)?);
    if content.len() as u64 != st.size || !after.same_content(&st) {
        return Err(FileProblem::ChangedWhileRead);
    }
    Ok((parse(&content)?, st))
}

#[cfg(test)]
mod tests {
    use super::*;

    const K0: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn line_err(content: &str) -> FileProblem {
        parse(content.as_bytes()).unwrap_err()
    }

    #[test]
    fn parses_ids_comments_and_blanks() {
        let text = format!("# ring\n\n  k1:{K0}\r\nK_2-b : {}\n", K0.to_uppercase());
        let ring = parse(text.as_bytes()).unwrap();
        assert_eq!(ring.keys.len(), 2);
        assert_eq!(ring.keys[0].id, "k1");
        assert_eq!(&ring.keys[0].bytes[..], &(0u8..32).collect::<Vec<_>>()[..]);
        assert_eq!(ring.keys[1].id, "K_2-b");
        assert_eq!(ring.keys[1].bytes, ring.keys[0].bytes);
        assert_eq!(ring.find(b"K_2-b"), Some(1));
        assert_eq!(ring.find(b"k2"), None);
    }

    #[test]
    fn long_keys_are_accepted() {
        let ring = parse(format!("a:{K0}{K0}ff").as_bytes()).unwrap();
        assert_eq!(ring.keys[0].bytes.len(), 65);
    }

    #[test]
    fn each_line_problem_is_reported_with_its_line_number() {
        use LineProblem::*;
        let cases = [
            (format!("\n\nnocolon{K0}"), 3, NoColon),
            (format!(":{K0}"), 1, BadKeyId),
            (format!("bad id:{K0}"), 1, BadKeyId),
            (format!("{}:{K0}", "x".repeat(33)), 1, BadKeyId),
            (format!("é:{K0}"), 1, BadKeyId),
            (format!("a:{K0}zz"), 1, BadHex),
            (format!("a:{K0}0"), 1, OddHex),
            (format!("a:{}", &K0[..62]), 1, ShortKey),
            ("a:".to_string(), 1, ShortKey),
            (format!("a:{K0}\n# c\nb:{K0}\na:{K0}"), 4, DuplicateKeyId),
        ];
        for (text, line, problem) in cases {
            assert_eq!(line_err(&text), FileProblem::Line(line, problem), "{text:?}");
        }
    }

    #[test]
    fn thirty_two_character_id_is_the_longest() {
        assert!(parse(format!("{}:{K0}", "x".repeat(32)).as_bytes()).is_ok());
    }

    #[test]
    fn empty_ring_is_an_error() {
        assert_eq!(line_err(""), FileProblem::NoKeys);
        assert_eq!(line_err("# only a comment\n\n"), FileProblem::NoKeys);
    }

    #[test]
    fn debug_output_hides_key_bytes() {
        let ring = parse(format!("k:{K0}").as_bytes()).unwrap();
        let shown = format!("{ring:?}");
        assert!(shown.contains("\"k\""));
        assert!(!shown.contains("31") && !shown.contains("1f"), "{shown}");
    }

    fn st(mode: u32, uid: u32) -> FileStamp {
        FileStamp { dev: 1, ino: 1, size: 100, mode, uid, mtime: (0, 0), ctime: (0, 0) }
    }

    #[test]
    fn permissions_follow_spec() {
        assert_eq!(check_stamp(&st(0o100600, 7), 7), Ok(()));
        assert_eq!(check_stamp(&st(0o100400, 0), 7), Ok(()));
        assert_eq!(check_stamp(&st(0o100640, 7), 7), Err(FileProblem::GroupOrWorldAccess(0o640)));
        assert_eq!(check_stamp(&st(0o100604, 7), 7), Err(FileProblem::GroupOrWorldAccess(0o604)));
        assert_eq!(check_stamp(&st(0o100640, 0), 7), Err(FileProblem::GroupOrWorldAccess(0o640)));
        assert_eq!(check_stamp(&st(0o100600, 8), 7), Err(FileProblem::WrongOwner));
        assert_eq!(check_stamp(&st(0o040700, 7), 7), Err(FileProblem::NotRegularFile));
        let mut big = st(0o100600, 7);
        big.size = MAX_FILE_BYTES + 1;
        assert_eq!(check_stamp(&big, 7), Err(FileProblem::TooLarge));
    }

    /// What `load` compares after its read: a chmod or a rename over the file (ctime) leaves
    /// what was read intact; a rewrite in place (mtime, size) does not.
    #[test]
    fn content_changes_are_told_from_metadata_changes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("deident-stamp-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ring");
        fs::write(&path, format!("k:{K0}\n")).unwrap();
        let a = stamp(&path).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let b = stamp(&path).unwrap();
        assert_ne!(a, b, "a chmod is a change for the cache");
        assert!(a.same_content(&b), "but not of the content");
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(&path, format!("j:{K0}\n")).unwrap();
        let c = stamp(&path).unwrap();
        assert!(!b.same_content(&c), "a rewrite in place of the same length");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn load_reads_a_real_file_and_notices_chmod() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("deident-keys-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ring");
        fs::write(&path, format!("k:{K0}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let uid = fs::metadata(&path).unwrap().uid();
        let first = stamp(&path).unwrap();
        let (ring, read) = load(&path, uid).unwrap();
        assert_eq!(ring.keys[0].id, "k");
        assert_eq!(read, first, "the stamp of what was read is the path's");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let second = stamp(&path).unwrap();
        assert_ne!(first, second);
        assert_eq!(load(&path, uid).unwrap_err(), FileProblem::GroupOrWorldAccess(0o640));
        assert_eq!(load(&dir, uid).unwrap_err(), FileProblem::NotRegularFile);
        // a FIFO is refused at once, not waited on for a writer
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        assert_eq!(load(&fifo, uid).unwrap_err(), FileProblem::NotRegularFile);
        assert_eq!(stamp(&dir.join("absent")).unwrap_err(), FileProblem::Missing);
        fs::remove_dir_all(&dir).unwrap();
    }
}
