//! The key-value store cdk-lnd and cdk-cln keep their subscription indices in.
//!
//! In memory on purpose: the indices only let a backend replay payments it missed while
//! the process was down, and the mint already does that itself by reconciling its unpaid
//! quotes at start. Keeping them in memory means the backend subscribes from "now".

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use cdk_common::database::{
    DbTransactionFinalizer, DynKVStore, Error, KVStore, KVStoreDatabase, KVStoreTransaction,
};
use parking_lot::Mutex;

type Key = (String, String, String);
type Map = BTreeMap<Key, Vec<u8>>;

/// An in-memory [`KVStore`].
#[derive(Debug, Default)]
pub(crate) struct MemoryKv {
    map: Arc<Mutex<Map>>,
}

impl MemoryKv {
    pub(crate) fn dyn_store() -> DynKVStore {
        Arc::new(Self::default())
    }
}

fn key(primary: &str, secondary: &str, key: &str) -> Key {
    (primary.to_string(), secondary.to_string(), key.to_string())
}

fn list(map: &Map, primary: &str, secondary: &str) -> Vec<String> {
    map.keys()
        .filter(|(p, s, _)| p == primary && s == secondary)
        .map(|(_, _, k)| k.clone())
        .collect()
}

#[async_trait]
impl KVStoreDatabase for MemoryKv {
    type Err = Error;

    async fn kv_read(&self, p: &str, s: &str, k: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.map.lock().get(&key(p, s, k)).cloned())
    }

    async fn kv_list(&self, p: &str, s: &str) -> Result<Vec<String>, Error> {
        Ok(list(&self.map.lock(), p, s))
    }
}

#[async_trait]
impl KVStore for MemoryKv {
    async fn begin_transaction(
        &self,
    ) -> Result<Box<dyn KVStoreTransaction<Error> + Send + Sync>, Error> {
        let snapshot = self.map.lock().clone();
        Ok(Box::new(MemoryTx {
            map: Arc::clone(&self.map),
            view: snapshot,
            writes: Vec::new(),
        }))
    }
}

/// Writes are buffered and applied at commit; reads see the transaction's own writes.
struct MemoryTx {
    map: Arc<Mutex<Map>>,
    view: Map,
    writes: Vec<(Key, Option<Vec<u8>>)>,
}

impl MemoryTx {
    fn set(&mut self, k: Key, value: Option<Vec<u8>>) {
        match &value {
            Some(v) => self.view.insert(k.clone(), v.clone()),
            None => self.view.remove(&k),
        };
        self.writes.push((k, value));
    }
}

#[async_trait]
impl DbTransactionFinalizer for MemoryTx {
    type Err = Error;

    async fn commit(self: Box<Self>) -> Result<(), Error> {
        let mut map = self.map.lock();
        for (k, value) in self.writes {
            match value {
                Some(v) => map.insert(k, v),
                None => map.remove(&k),
            };
        }
        Ok(())
    }

    async fn rollback(self: Box<Self>) -> Result<(), Error> {
        Ok(())
    }
}

#[async_trait]
impl KVStoreTransaction<Error> for MemoryTx {
    async fn kv_read(&mut self, p: &str, s: &str, k: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.view.get(&key(p, s, k)).cloned())
    }

    async fn kv_write(&mut self, p: &str, s: &str, k: &str, value: &[u8]) -> Result<(), Error> {
        self.set(key(p, s, k), Some(value.to_vec()));
        Ok(())
    }

    async fn kv_write_if_absent(
        &mut self,
        p: &str,
        s: &str,
        k: &str,
        value: &[u8],
    ) -> Result<bool, Error> {
        if self.view.contains_key(&key(p, s, k)) {
            return Ok(false);
        }
        self.set(key(p, s, k), Some(value.to_vec()));
        Ok(true)
    }

    async fn kv_remove(&mut self, p: &str, s: &str, k: &str) -> Result<(), Error> {
        self.set(key(p, s, k), None);
        Ok(())
    }

    async fn kv_write_if_equals(
        &mut self,
        p: &str,
        s: &str,
        k: &str,
        expected: &[u8],
        replacement: &[u8],
    ) -> Result<bool, Error> {
        if self.view.get(&key(p, s, k)).map(Vec::as_slice) != Some(expected) {
            return Ok(false);
        }
        self.set(key(p, s, k), Some(replacement.to_vec()));
        Ok(true)
    }

    async fn kv_list(&mut self, p: &str, s: &str) -> Result<Vec<String>, Error> {
        Ok(list(&self.view, p, s))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn commit_applies_writes_and_rollback_drops_them() {
        let store = MemoryKv::default();
        let mut tx = store.begin_transaction().await.unwrap();
        tx.kv_write("a", "b", "k", b"1").await.unwrap();
        assert_eq!(
            tx.kv_read("a", "b", "k").await.unwrap(),
            Some(b"1".to_vec())
        );
        assert_eq!(store.kv_read("a", "b", "k").await.unwrap(), None);
        tx.commit().await.unwrap();
        assert_eq!(
            store.kv_read("a", "b", "k").await.unwrap(),
            Some(b"1".to_vec())
        );

        let mut tx = store.begin_transaction().await.unwrap();
        assert!(!tx.kv_write_if_absent("a", "b", "k", b"2").await.unwrap());
        assert!(tx
            .kv_write_if_equals("a", "b", "k", b"1", b"3")
            .await
            .unwrap());
        tx.kv_remove("a", "b", "k").await.unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(
            store.kv_read("a", "b", "k").await.unwrap(),
            Some(b"1".to_vec())
        );
        assert_eq!(
            store.kv_list("a", "b").await.unwrap(),
            vec!["k".to_string()]
        );
    }
}
