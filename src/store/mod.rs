#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },
    #[error("duplicate {property}")]
    Duplicate { property: &'static str, value: String },
    #[error("{message}")]
    Invalid { property: &'static str, message: String },
    #[error("storage: {0}")]
    Storage(#[from] sled::Error),
    #[error("corrupt record: {0}")]
    Corrupt(#[from] serde_json::Error),
}
