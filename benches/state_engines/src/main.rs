//! The processor's keyed-state access pattern on two embedded engines, to choose one.
//!
//! Per batch of 1,000 records: 1,000 point reads of 16-byte keys, nine in ten absent
//! (new call ids and new callers are the common case), then 1,000 writes of 320-byte
//! values in one atomic batch, as the processor writes a batch's state. Before the
//! batches, the store is filled with PRELOAD keys (in batches of 10,000). Prints the
//! fill time, records per second over the batches, and the bytes on disk.
//!
//!     cargo run --release -- ENGINE PRELOAD BATCHES [DIR]
//!     ENGINE: redb | fjall; DIR defaults to ./data (emptied first)

use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::Rng;

const VALUE_BYTES: usize = 320;
const BATCH: usize = 1_000;
const FILL_CHUNK: usize = 10_000;
/// Keys kept from the fill, for the reads that find something.
const KEPT: usize = 100_000;

trait Engine {
    fn fill(&mut self, keys: &[[u8; 16]], value: &[u8]);
    /// Reads every key, then writes every key; returns how many reads found one.
    fn batch(&mut self, keys: &[[u8; 16]], value: &[u8]) -> usize;
}

struct Redb(redb::Database);
const TABLE: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("state");

impl Engine for Redb {
    fn fill(&mut self, keys: &[[u8; 16]], value: &[u8]) {
        let mut tx = self.0.begin_write().expect("write transaction");
        tx.set_durability(redb::Durability::None);
        {
            let mut table = tx.open_table(TABLE).expect("table");
            for key in keys {
                table.insert(&key[..], value).expect("insert");
            }
        }
        tx.commit().expect("commit");
    }

    fn batch(&mut self, keys: &[[u8; 16]], value: &[u8]) -> usize {
        use redb::ReadableTable;
        let found = {
            let tx = self.0.begin_read().expect("read transaction");
            let table = tx.open_table(TABLE).expect("table");
            keys.iter()
                .filter(|k| table.get(&k[..]).expect("get").is_some())
                .count()
        };
        // Eventual: no fsync per batch, as the processor's journal (its changelog
        // topic is the record).
        let mut tx = self.0.begin_write().expect("write transaction");
        tx.set_durability(redb::Durability::Eventual);
        {
            let mut table = tx.open_table(TABLE).expect("table");
            for key in keys {
                table.insert(&key[..], value).expect("insert");
            }
        }
        tx.commit().expect("commit");
        found
    }
}

struct Fjall {
    keyspace: fjall::Keyspace,
    partition: fjall::PartitionHandle,
}

impl Engine for Fjall {
    fn fill(&mut self, keys: &[[u8; 16]], value: &[u8]) {
        let mut batch = self.keyspace.batch();
        for key in keys {
            batch.insert(&self.partition, *key, value);
        }
        batch.commit().expect("commit");
    }

    fn batch(&mut self, keys: &[[u8; 16]], value: &[u8]) -> usize {
        let found = keys
            .iter()
            .filter(|k| self.partition.get(k).expect("get").is_some())
            .count();
        self.fill(keys, value);
        found
    }
}

fn open(engine: &str, dir: &Path) -> Box<dyn Engine> {
    match engine {
        "redb" => Box::new(Redb(
            redb::Database::builder()
                .set_cache_size(256 << 20)
                .create(dir.join("state.redb"))
                .expect("redb"),
        )),
        "fjall" => {
            let keyspace = fjall::Config::new(dir)
                .cache_size(256 << 20)
                .open()
                .expect("fjall");
            let partition = keyspace
                .open_partition("state", fjall::PartitionCreateOptions::default())
                .expect("partition");
            Box::new(Fjall {
                keyspace,
                partition,
            })
        }
        other => usage(&format!("unknown engine {other:?}")),
    }
}

fn usage(problem: &str) -> ! {
    eprintln!("{problem}\nusage: state-engines redb|fjall PRELOAD BATCHES [DIR]");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        usage("missing arguments");
    }
    let engine = args[1].as_str();
    let preload: usize = args[2].parse().unwrap_or_else(|_| usage("PRELOAD: a count"));
    let batches: usize = args[3].parse().unwrap_or_else(|_| usage("BATCHES: a count"));
    let dir = PathBuf::from(args.get(4).map_or("data", String::as_str));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("data directory");

    let mut rng = rand::thread_rng();
    // Compressible as the processor's JSON values are: a third random letters.
    let template = br#"{"id":"cm_caller","at":1795212000}"#;
    let value: Vec<u8> = (0..VALUE_BYTES)
        .map(|i| {
            if i % 3 == 0 {
                rng.gen_range(b'a'..=b'z')
            } else {
                template[i % template.len()]
            }
        })
        .collect();
    let mut store = open(engine, &dir);

    let started = Instant::now();
    let mut kept: Vec<[u8; 16]> = Vec::with_capacity(KEPT);
    for _ in 0..preload / FILL_CHUNK {
        let keys: Vec<[u8; 16]> = (0..FILL_CHUNK).map(|_| rng.gen()).collect();
        let room = KEPT.saturating_sub(kept.len());
        kept.extend(keys.iter().take(room));
        store.fill(&keys, &value);
    }
    println!(
        "{engine}: filled with {preload} keys in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let mut found = 0;
    for _ in 0..batches {
        let keys: Vec<[u8; 16]> = (0..BATCH)
            .map(|i| {
                if i % 10 == 0 && !kept.is_empty() {
                    kept[rng.gen_range(0..kept.len())]
                } else {
                    rng.gen()
                }
            })
            .collect();
        found += store.batch(&keys, &value);
    }
    let seconds = started.elapsed().as_secs_f64();
    drop(store);
    println!(
        "{engine} {preload}: {batches} batches of {BATCH} reads ({found} found) and {BATCH} writes in {seconds:.2} s = {:.0} records/s",
        (batches * BATCH) as f64 / seconds
    );
    println!("on disk: {:.1} MB", bytes_under(&dir) as f64 / 1e6);
}

fn bytes_under(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => bytes_under(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}
