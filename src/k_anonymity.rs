//! `deident.k_anonymity(rel, quasi_identifiers, person)` (SPEC "k-anonymity-checked
//! aggregates"): how k-anonymous a table is. Written in PL/pgSQL (sql/k_anonymity.sql): it
//! builds one GROUP BY query over the table, with column names quoted by format('%I').
//! It reads the labels through `deident._column_labels` (src/labels.rs), at run time.

pgrx::extension_sql_file!("../sql/k_anonymity.sql", name = "k_anonymity", requires = ["labels"]);
