//! Partner record → canonical call. Rules are compiled once per integration
//! version (`CompiledMapping`); each record then costs one walk of its fields.
//! Required fields that fail reject the record with every field error; optional
//! fields that fail become warnings on the row.

pub mod coerce;
mod compiled;
mod condition;
mod record;
mod steps;

pub use compiled::CompiledMapping;
pub use record::{
    assemble, map_fields, map_record, trace_rules, FieldError, MappedFields, Rejection,
};

#[cfg(test)]
mod attributes_test;
#[cfg(test)]
mod declarative_test;
#[cfg(test)]
mod merge_test;
#[cfg(test)]
mod presets_test;
#[cfg(test)]
mod rules_test;
#[cfg(test)]
mod samples_test;
