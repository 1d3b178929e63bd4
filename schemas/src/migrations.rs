//! The ClickHouse schema as numbered migrations, embedded in every binary so the
//! schema and the code that writes it ship together. Applied by `cmctl migrate`
//! (see `runtime::migrate`).

pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// The ledger table `schema_migrations`, created before the numbered migrations.
pub const LEDGER: Migration = Migration {
    version: 0,
    name: "ledger",
    sql: include_str!("../migrations/ledger.sql"),
};

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "calls",
        sql: include_str!("../migrations/0001_calls.sql"),
    },
    Migration {
        version: 2,
        name: "dead_letters",
        sql: include_str!("../migrations/0002_dead_letters.sql"),
    },
    Migration {
        version: 3,
        name: "connected",
        sql: include_str!("../migrations/0003_connected.sql"),
    },
    Migration {
        version: 4,
        name: "enrichment",
        sql: include_str!("../migrations/0004_enrichment.sql"),
    },
    Migration {
        version: 5,
        name: "calls_by_time",
        sql: include_str!("../migrations/0005_calls_by_time.sql"),
    },
    Migration {
        version: 6,
        name: "calls_hourly",
        sql: include_str!("../migrations/0006_calls_hourly.sql"),
    },
    Migration {
        version: 7,
        name: "calls_hourly_dims",
        sql: concat!(
            include_str!("../migrations/0007_calls_hourly_dims.sql"),
            // The backfill as it was then (before buyer and linked): applied
            // migrations must keep their text, the ledger checks it.
            include_str!("../migrations/0007_rollup_backfill.sql")
        ),
    },
    Migration {
        version: 8,
        name: "dead_letters_account",
        sql: include_str!("../migrations/0008_dead_letters_account.sql"),
    },
    Migration {
        version: 9,
        name: "caller_withheld",
        sql: include_str!("../migrations/0009_caller_withheld.sql"),
    },
    Migration {
        version: 10,
        name: "analyst_views",
        sql: include_str!("../migrations/0010_analyst_views.sql"),
    },
    Migration {
        version: 11,
        name: "buyer_linked_columns",
        sql: include_str!("../migrations/0011_buyer_linked_columns.sql"),
    },
    Migration {
        version: 12,
        name: "buyer_linked_fill",
        sql: include_str!("../migrations/0012_buyer_linked_fill.sql"),
    },
    Migration {
        version: 13,
        name: "call_ids",
        sql: include_str!("../migrations/0013_call_ids.sql"),
    },
    Migration {
        version: 14,
        name: "fitted_letters_cm_account",
        sql: include_str!("../migrations/0014_fitted_letters_cm_account.sql"),
    },
    Migration {
        version: 15,
        name: "filtered_records",
        sql: include_str!("../migrations/0015_filtered_records.sql"),
    },
    Migration {
        version: 16,
        name: "call_attributes",
        sql: include_str!("../migrations/0016_call_attributes.sql"),
    },
    Migration {
        version: 17,
        name: "call_attributes_feed",
        sql: include_str!("../migrations/0017_call_attributes_feed.sql"),
    },
    Migration {
        version: 18,
        name: "audit_log",
        sql: include_str!("../migrations/0018_audit_log.sql"),
    },
    Migration {
        version: 19,
        name: "retention_runs",
        sql: include_str!("../migrations/0019_retention_runs.sql"),
    },
    Migration {
        version: 20,
        name: "source_keys",
        sql: include_str!("../migrations/0020_source_keys.sql"),
    },
    Migration {
        version: 21,
        name: "erasures",
        sql: include_str!("../migrations/0021_erasures.sql"),
    },
    Migration {
        version: 22,
        name: "erasure_topics",
        sql: include_str!("../migrations/0022_erasure_topics.sql"),
    },
];

/// Rolls up every stored call at version 0, below every version the rollup worker
/// writes: part of migration 7 (in the form of then, `0007_rollup_backfill.sql`), and run again by `cmctl rollup-backfill` after calls
/// were loaded into ClickHouse directly. Idempotent: the same rows at the same version
/// replace each other.
pub const ROLLUP_BACKFILL: Migration = Migration {
    version: 7,
    name: "rollup_backfill",
    sql: include_str!("../migrations/rollup_backfill.sql"),
};

impl Migration {
    /// The statements of a migration file: the HTTP interface takes one at a time.
    /// Statements end with `;` at the end of a line; `--` comment lines are dropped.
    pub fn statements(&self) -> Vec<String> {
        let mut statements = Vec::new();
        let mut current = String::new();
        for line in self.sql.lines() {
            let trimmed = line.trim();
            if trimmed.starts_with("--") || trimmed.is_empty() {
                continue;
            }
            current.push_str(line);
            current.push('\n');
            if trimmed.ends_with(';') {
                let statement = current.trim().trim_end_matches(';').trim().to_owned();
                statements.push(statement);
                current.clear();
            }
        }
        if !current.trim().is_empty() {
            statements.push(current.trim().to_owned());
        }
        statements
    }

    /// Detects a shipped migration edited after it was applied somewhere.
    pub fn checksum(&self) -> String {
        // FNV-1a: stable across Rust versions, unlike `DefaultHasher`.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in self.sql.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{hash:016x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_dense_and_ordered() {
        for (i, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version as usize, i + 1, "{}", migration.name);
        }
    }

    #[test]
    fn every_file_splits_into_statements_without_comments() {
        for migration in MIGRATIONS {
            let statements = migration.statements();
            assert!(!statements.is_empty(), "{}", migration.name);
            for statement in statements {
                assert!(!statement.contains("--"), "{statement}");
                assert!(!statement.ends_with(';'));
            }
        }
    }

    #[test]
    fn applied_migrations_keep_their_text() {
        // A database that applied one of these refuses to migrate when its text
        // changes (`MigrateError::Edited`): a change must be a new migration.
        let shipped = [
            (1, "4e6b95af8df2bb82"),
            (2, "6c05afc09be9e6f5"),
            (3, "546f2fe113fdc7bf"),
            (4, "7dac11e0cde9ae80"),
            (5, "d63ed53f0d19e73e"),
            (6, "584a3b46032a7eca"),
            (7, "9ec0d21aac0cb29a"),
            (8, "08bc148c484088e9"),
            (9, "06e44ab964fe3814"),
            (10, "14f9b6e085ff84d7"),
            (11, "e2c001c55a53ce02"),
            (12, "fc58a8af7cdb1947"),
            (13, "bb362565dbf3d1a2"),
        ];
        for (version, checksum) in shipped {
            let migration = &MIGRATIONS[version - 1];
            assert_eq!(migration.checksum(), checksum, "{}", migration.name);
        }
    }
}
