//! The framing of a `STREAMED_XOR_CHUNKS` body (Prometheus'
//! `storage/remote/chunked.go`): each message is preceded by its length as
//! an unsigned LEB128 varint and the CRC32-C (Castagnoli) of the message as
//! 4 big-endian bytes.

/// Appends one frame holding `msg` to `out`: the length of `msg` as an
/// unsigned varint, its CRC32-C big-endian, then `msg`.
///
/// ```
/// let mut out = Vec::new();
/// tidemark_remote::read::frame::put_frame(&mut out, b"hi");
/// assert_eq!(out[0], 2);
/// assert_eq!(&out[1..5], &crc32c::crc32c(b"hi").to_be_bytes());
/// assert_eq!(&out[5..], b"hi");
/// ```
pub fn put_frame(out: &mut Vec<u8>, msg: &[u8]) {
    let mut n = msg.len() as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out.extend_from_slice(&crc32c::crc32c(msg).to_be_bytes());
    out.extend_from_slice(msg);
}

/// Bytes a frame adds around a message of `len` bytes.
pub fn overhead(len: usize) -> usize {
    let mut n = len as u64;
    let mut v = 1;
    while n >= 0x80 {
        n >>= 7;
        v += 1;
    }
    v + 4
}
