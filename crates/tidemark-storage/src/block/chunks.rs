//! Chunk files: `chunks/000001`, `chunks/000002`, … inside a block.
//!
//! Layout (see `docs/format/chunks.md`): an 8-byte header (magic `TMCK`,
//! version byte, three zero bytes), then chunks back to back, each
//! `uvarint(len(data)) encoding:u8 data crc32c:u32le` where the CRC covers
//! the encoding byte and the data. A chunk reference is
//! `file_number << 32 | offset` with 1-based file numbers; a file is closed
//! before it would exceed [`MAX_CHUNK_FILE_SIZE`] bytes.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;

use super::enc::{put_uvarint, Dec, DecResult};
use super::group;
use crate::chunkenc::{Chunk, ChunkBytes, Encoding};
use crate::error::Error;
use crate::vfs::{FileWriter, SharedFs};

/// Magic number at the start of every chunk file (`"TMCK"`).
pub const CHUNKS_MAGIC: [u8; 4] = *b"TMCK";
/// Current chunk file format version.
pub const CHUNKS_VERSION: u8 = 1;
/// Bytes of the chunk file header.
pub const CHUNKS_HEADER_LEN: usize = 8;
/// A chunk file is cut before it would grow beyond this size (512 MiB).
pub const MAX_CHUNK_FILE_SIZE: u64 = 512 << 20;
/// Most chunk files one block can have (file numbers are 32-bit, and the
/// file name has six digits).
pub const MAX_CHUNK_FILES: u32 = 999_999;

/// The file name of chunk file number `n` (1-based).
pub fn chunk_file_name(n: u32) -> String {
    format!("{n:06}")
}

/// Writes chunk files into a directory, cutting a new file when the current
/// one would exceed the size limit.
pub(crate) struct ChunkWriter {
    fs: SharedFs,
    dir: PathBuf,
    max_file_size: u64,
    file: Option<(BufWriter<FileWriter>, PathBuf)>,
    file_no: u32,
    offset: u64,
    scratch: Vec<u8>,
}

impl ChunkWriter {
    pub(crate) fn new(fs: SharedFs, dir: &Path, max_file_size: u64) -> Result<ChunkWriter, Error> {
        fs.create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        Ok(ChunkWriter {
            fs,
            dir: dir.to_path_buf(),
            max_file_size,
            file: None,
            file_no: 0,
            offset: 0,
            scratch: Vec::new(),
        })
    }

    /// Appends one chunk and returns its reference.
    pub(crate) fn write(&mut self, encoding: Encoding, data: &[u8]) -> Result<u64, Error> {
        self.write_record(encoding as u8, data)
    }

    /// Appends one record with encoding byte `encoding` (a chunk encoding
    /// or [`super::group::GROUP_ENCODING`]) and returns its reference.
    pub(crate) fn write_record(&mut self, encoding: u8, data: &[u8]) -> Result<u64, Error> {
        self.scratch.clear();
        put_uvarint(&mut self.scratch, data.len() as u64);
        let rec_len = self.scratch.len() as u64 + 1 + data.len() as u64 + 4;
        if rec_len + CHUNKS_HEADER_LEN as u64 > u64::from(u32::MAX) {
            return Err(super::BlockError::Limit(format!("chunk of {} bytes", data.len())).into());
        }
        let need_new = match self.file {
            None => true,
            // A chunk bigger than the limit still goes into a file of its own.
            Some(_) => self.offset + rec_len > self.max_file_size && self.offset > CHUNKS_HEADER_LEN as u64,
        };
        if need_new {
            self.cut()?;
        }
        let enc = [encoding];
        let mut crc = crc32c::crc32c(&enc);
        crc = crc32c::crc32c_append(crc, data);
        let (w, path) = self.file.as_mut().expect("cut() opened a file");
        let r = (|| {
            w.write_all(&self.scratch)?;
            w.write_all(&enc)?;
            w.write_all(data)?;
            w.write_all(&crc.to_le_bytes())
        })();
        r.map_err(|e| Error::io(path.as_path(), e))?;
        let chunk_ref = (u64::from(self.file_no) << 32) | self.offset;
        self.offset += rec_len;
        Ok(chunk_ref)
    }

    fn cut(&mut self) -> Result<(), Error> {
        self.finish_file()?;
        if self.file_no >= MAX_CHUNK_FILES {
            return Err(super::BlockError::Limit("too many chunk files".into()).into());
        }
        self.file_no += 1;
        let path = self.dir.join(chunk_file_name(self.file_no));
        let f = self.fs.create(&path).map_err(|e| Error::io(&path, e))?;
        let mut w = BufWriter::with_capacity(1 << 20, FileWriter(f));
        let mut header = [0u8; CHUNKS_HEADER_LEN];
        header[..4].copy_from_slice(&CHUNKS_MAGIC);
        header[4] = CHUNKS_VERSION;
        w.write_all(&header).map_err(|e| Error::io(&path, e))?;
        self.offset = CHUNKS_HEADER_LEN as u64;
        self.file = Some((w, path));
        Ok(())
    }

    /// Flushes and fsyncs the open file.
    fn finish_file(&mut self) -> Result<(), Error> {
        if let Some((w, path)) = self.file.take() {
            let f = w.into_inner().map_err(|e| Error::io(&path, e.into_error()))?;
            f.0.sync_all().map_err(|e| Error::io(&path, e))?;
        }
        Ok(())
    }

    /// Flushes and fsyncs everything written; returns the number of files.
    pub(crate) fn finish(mut self) -> Result<u32, Error> {
        self.finish_file()?;
        Ok(self.file_no)
    }
}

/// The mapped chunk files of one block.
pub(crate) struct ChunkFiles {
    maps: Vec<Arc<Mmap>>,
}

impl ChunkFiles {
    /// Maps every chunk file in `dir`; the files must be numbered 1..=n
    /// without gaps and each must carry a valid header. `corrupt` builds the
    /// error for damaged contents.
    pub(crate) fn open(dir: &Path, corrupt: &dyn Fn(String) -> Error) -> Result<ChunkFiles, Error> {
        let mut names: Vec<(u32, PathBuf)> = Vec::new();
        let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        for ent in rd {
            let ent = ent.map_err(|e| Error::io(dir, e))?;
            let name = ent.file_name().to_string_lossy().into_owned();
            match name.parse::<u32>() {
                Ok(n) if name.len() == 6 && n > 0 => names.push((n, ent.path())),
                _ => return Err(corrupt(format!("unexpected file {name:?} in chunks directory"))),
            }
        }
        names.sort();
        let mut maps = Vec::with_capacity(names.len());
        for (i, (n, path)) in names.iter().enumerate() {
            if *n as usize != i + 1 {
                return Err(corrupt(format!("chunk file {n:06} where {:06} was expected", i + 1)));
            }
            let f = File::open(path).map_err(|e| Error::io(path, e))?;
            let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
            if len < CHUNKS_HEADER_LEN as u64 {
                return Err(corrupt(format!("chunk file {n:06} of {len} bytes is shorter than its header")));
            }
            // SAFETY: block files are immutable once the block directory is
            // renamed into place; nothing writes them afterwards and the
            // database owns the directory, so the mapped bytes do not change
            // under us. Every read through the map is bounds-checked.
            let map = unsafe { Mmap::map(&f) }.map_err(|e| Error::io(path, e))?;
            if map[..4] != CHUNKS_MAGIC {
                return Err(corrupt(format!("chunk file {n:06}: bad magic")));
            }
            if map[4] != CHUNKS_VERSION || map[5..8] != [0, 0, 0] {
                return Err(corrupt(format!("chunk file {n:06}: unsupported version {}", map[4])));
            }
            maps.push(Arc::new(map));
        }
        Ok(ChunkFiles { maps })
    }

    /// Bytes mapped of chunk file `file_no` (1-based), if it exists.
    pub(crate) fn mapped_len(&self, file_no: u32) -> Option<u64> {
        let i = (file_no as usize).checked_sub(1)?;
        self.maps.get(i).map(|m| m.len() as u64)
    }

    /// Number of chunk files.
    pub(crate) fn num_files(&self) -> u32 {
        self.maps.len() as u32
    }

    /// Total bytes of all chunk files.
    pub(crate) fn size_bytes(&self) -> u64 {
        self.maps.iter().map(|m| m.len() as u64).sum()
    }

    /// The chunk at `chunk_ref`, checksum-verified: a zero-copy view of a
    /// chunk with a record of its own, or a copy of a group member's bytes
    /// (see [`super::group`]).
    pub(crate) fn chunk(&self, chunk_ref: u64, mint: i64, maxt: i64) -> DecResult<Chunk> {
        let slot = group::slot_of(chunk_ref);
        let record = group::record_of(chunk_ref);
        let (map, enc_byte, start, len) = self.record(record)?;
        if slot != 0 {
            if enc_byte != group::GROUP_ENCODING {
                return Err(format!("chunk {chunk_ref:#x} names a group member, record has encoding {enc_byte}"));
            }
            let g = group::cached_group(map, record, &map[start..start + len])
                .map_err(|e| format!("chunk {chunk_ref:#x}: {e}"))?;
            let bytes = g
                .member(usize::from(slot) - 1)
                .ok_or_else(|| format!("chunk {chunk_ref:#x}: group of {} has no member {slot}", g.len()))?;
            return Ok(Chunk {
                mint,
                maxt,
                encoding: Encoding::Sealed,
                bytes: ChunkBytes::Heap(Arc::from(bytes)),
                timestamps: None,
                summary: None,
            });
        }
        let encoding = Encoding::try_from(enc_byte).map_err(|e| format!("chunk {chunk_ref:#x}: {e}"))?;
        Ok(Chunk {
            mint,
            maxt,
            encoding,
            bytes: ChunkBytes::Mapped { map: Arc::clone(map), start, len },
            timestamps: None,
            summary: None,
        })
    }

    /// The record at `chunk_ref` (no slot bits), checksum-verified: its
    /// map, encoding byte, and the data's start and length in the map.
    fn record(&self, chunk_ref: u64) -> DecResult<(&Arc<Mmap>, u8, usize, usize)> {
        let file_no = (chunk_ref >> 32) as usize;
        let offset = (chunk_ref & 0xffff_ffff) as usize;
        let map = file_no
            .checked_sub(1)
            .and_then(|i| self.maps.get(i))
            .ok_or_else(|| format!("chunk reference {chunk_ref:#x} names missing chunk file {file_no}"))?;
        if offset < CHUNKS_HEADER_LEN {
            return Err(format!("chunk reference {chunk_ref:#x} points into the file header"));
        }
        let mut d = Dec::at(map, offset).map_err(|e| format!("chunk reference {chunk_ref:#x}: {e}"))?;
        let len = d.uvarint()?;
        let len = usize::try_from(len).map_err(|_| format!("chunk length {len} too large"))?;
        let enc_byte = d.u8()?;
        let start = d.pos();
        let data = d.bytes(len).map_err(|e| format!("chunk {chunk_ref:#x} truncated: {e}"))?;
        let stored = d.u32()?;
        let crc = crc32c::crc32c_append(crc32c::crc32c(&[enc_byte]), data);
        if crc != stored {
            return Err(format!("chunk {chunk_ref:#x}: checksum {stored:#010x} != computed {crc:#010x}"));
        }
        Ok((map, enc_byte, start, len))
    }
}
