//! Arbitrary bytes as a block index must give an error or a working index,
//! never a panic: both as raw bytes (checksums almost always fail) and with
//! checksums repaired so the structural checks and lazy decoding are reached.
//! Every few inputs the bytes are also written as the `index` file of a real
//! block directory and the block is opened and queried. The first byte's
//! low bit says whether to repair checksums; the rest is the index.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tidemark_storage::block::index::{exercise, repair_checksums, IndexReader};
use tidemark_storage::block::{write_block, Block, CompactionMeta, INDEX_FILENAME};
use tidemark_storage::{Labels, Matcher, Sample};

/// A valid block whose index file each input replaces.
fn block_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let parent = std::env::temp_dir().join(format!("tidemark-fuzz-block-index-{}", std::process::id()));
        std::fs::create_dir_all(&parent).expect("temp dir");
        let series = (0..4).map(|i| {
            (Labels::new([("__name__", "m"), ("i", &i.to_string())]).expect("labels"), vec![Sample::new(i, 1.0)])
        });
        let meta = write_block(&parent, 0, 100, CompactionMeta::level1(), series, &Default::default()).expect("block");
        parent.join(meta.ulid)
    })
}

fuzz_target!(|input: &[u8]| {
    let Some((&flags, rest)) = input.split_first() else { return };
    let repair = flags & 1 == 1;
    let mut bytes = rest.to_vec();
    if repair {
        repair_checksums(&mut bytes);
    }
    if let Ok(ix) = IndexReader::open(&bytes[..]) {
        let _ = exercise(&ix);
    }
    if bytes.len() % 8 == 0 {
        let dir = block_dir();
        std::fs::write(dir.join(INDEX_FILENAME), &bytes).expect("write index");
        if let Ok(b) = Block::open(dir) {
            if let Ok(series) = b.select(&[Matcher::equal("__name__", "m")], i64::MIN, i64::MAX) {
                for s in series {
                    for c in &s.chunks {
                        let _ = c.decode_into(&mut Vec::new());
                    }
                }
            }
            let _ = b.label_names(&[]);
            let _ = b.label_values("i", &[Matcher::equal("__name__", "m")]);
            if let Ok(it) = b.all_series() {
                it.for_each(drop);
            }
        }
    }
});
