//! One JSON document per Durable Object, in a one-row table of its SQLite storage: what the
//! `Account` and `KeyStore` objects keep. A load and a save are one statement each, so a transition
//! saved in one `save` commits whole or not at all.

use crate::error::{json_error_detail, ApiError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use worker::{SqlStorage, State};

#[derive(Deserialize)]
struct Row {
    doc: String,
}

/// A failure of the object's storage (the object being reset, say): nothing was committed, so the
/// caller may retry (503 with `Retry-After`).
fn storage_failed(e: worker::Error) -> ApiError {
    ApiError::Unavailable(format!("storage: {e}"))
}

/// The document of one object, in the table `table` (a name of the code's, never of a request's).
pub struct Document<'a> {
    state: &'a State,
    table: &'static str,
}

impl<'a> Document<'a> {
    /// The document kept in `table` of this object's storage.
    pub fn new(state: &'a State, table: &'static str) -> Self {
        Document { state, table }
    }

    fn sql(&self) -> Result<SqlStorage, ApiError> {
        let sql = self.state.storage().sql();
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {} (id INTEGER PRIMARY KEY CHECK (id = 1), doc TEXT NOT NULL)",
            self.table
        );
        sql.exec(&create, None).map_err(storage_failed)?;
        Ok(sql)
    }

    /// The stored document, or the default one if none was saved yet.
    pub fn load<T: DeserializeOwned + Default>(&self) -> Result<T, ApiError> {
        let select = format!("SELECT doc FROM {} WHERE id = 1", self.table);
        let rows: Vec<Row> =
            self.sql()?.exec(&select, None).and_then(|cursor| cursor.to_array()).map_err(storage_failed)?;
        match rows.first() {
            None => Ok(T::default()),
            Some(row) => serde_json::from_str(&row.doc)
                .map_err(|e| ApiError::Server(format!("{} document: {}", self.table, json_error_detail(&e)))),
        }
    }

    /// Saves the document, in one statement.
    pub fn save<T: Serialize>(&self, doc: &T) -> Result<(), ApiError> {
        let text = serde_json::to_string(doc).map_err(|e| ApiError::Server(json_error_detail(&e)))?;
        let upsert = format!(
            "INSERT INTO {} (id, doc) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET doc = excluded.doc",
            self.table
        );
        self.sql()?.exec(&upsert, vec![text.into()]).map_err(storage_failed)?;
        Ok(())
    }
}
