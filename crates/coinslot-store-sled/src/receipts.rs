//! Receipts in sled: a paid request's packed with others into pages, the rest alone by key.
//!
//! A receipt inserted on its own is a walk down sled's tree to a leaf, a copy of that leaf,
//! and a split every eight or so (sled 0.34 splits a leaf at 16 entries): with one receipt
//! per paid request that was 4 to 5% of the server's CPU on an empty store, and the store's
//! CPU per paid request grew by a third once it held a million receipts (leaves found cold;
//! `receipt-scale` in BENCHMARKS.md). So the batch
//! thread moves the new receipts it holds (see `fresh.rs`) as pages of up to [`PAGE`]
//! receipts made in the same second, one sled write a page: the receipts into
//! `receipts.pages` and their keys into `receipts.page-keys`, both keyed
//! `created_at | page number`. A receipt written later (a run's answer after the move, a
//! refund) or by a transaction goes alone into `receipts.v2` under its key, as before, and
//! wins over its copy in a page.
//!
//! A retry asks by key. A receipt alone is found by it; for those in pages an index in
//! memory maps 128 bits of each key (as the spent-proof index keeps) to its page: about 50
//! bytes per receipt with the map's slack, rebuilt at start from `receipts.page-keys` alone
//! (32 bytes a receipt, not the receipts). Pages are pruned by age as ranges.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};

use coinslot_mint::StoreError;
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use sled::IVec;

use crate::{backend, corrupt};

/// The tree of receipts written alone, keyed by receipt key.
const ALONE: &str = "receipts.v2";

/// The tree of pages of receipts moved together.
const PAGES: &str = "receipts.pages";

/// The keys of each page's receipts, under the page's key.
const PAGE_KEYS: &str = "receipts.page-keys";

/// Most receipts in a page: one sled write per this many paid requests, and what a read of
/// one receipt in a page decodes (tens of kilobytes with their answers).
pub(crate) const PAGE: usize = 64;

/// The key of page `page` of receipts created at `created_at`.
fn page_key(created_at: u64, page: u64) -> [u8; 16] {
    let mut at = [0u8; 16];
    at[..8].copy_from_slice(&created_at.to_be_bytes());
    at[8..].copy_from_slice(&page.to_be_bytes());
    at
}

/// The `created_at` an encoded receipt or a page key starts with.
pub(crate) fn created_at(bytes: &[u8]) -> Option<u64> {
    bytes.first_chunk::<8>().map(|b| u64::from_be_bytes(*b))
}

/// The 128 bits of a receipt key the index keeps.
fn short(key: &[u8; 32]) -> u128 {
    let mut half = [0u8; 16];
    half.copy_from_slice(&key[..16]);
    u128::from_be_bytes(half)
}

/// A page's place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Loc {
    created_at: u64,
    page: u64,
}

/// Where a page is, from its key.
fn page_loc(at: &[u8]) -> Result<Loc, StoreError> {
    match (created_at(at), at.get(8..).and_then(created_at)) {
        (Some(created_at), Some(page)) if at.len() == 16 => Ok(Loc { created_at, page }),
        _ => Err(corrupt("receipt page key is not 16 bytes")),
    }
}

/// A receipt in a page: its key and value.
type PageEntry<'a> = (&'a [u8; 32], &'a [u8]);

/// The receipts a page holds: `key (32) | value length (u32 BE) | value`, one after another.
fn page_entries(mut bytes: &[u8]) -> Result<Vec<PageEntry<'_>>, StoreError> {
    let mut entries = Vec::new();
    while !bytes.is_empty() {
        let (key, rest) = bytes
            .split_first_chunk::<32>()
            .ok_or_else(|| corrupt("receipt page cut short"))?;
        let (len, rest) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| corrupt("receipt page cut short"))?;
        let (value, rest) = rest
            .split_at_checked(u32::from_be_bytes(*len) as usize)
            .ok_or_else(|| corrupt("receipt page cut short"))?;
        entries.push((key, value));
        bytes = rest;
    }
    Ok(entries)
}

/// A page of `entries`.
fn encode_page<'a>(
    entries: impl IntoIterator<Item = (&'a [u8; 32], &'a [u8])>,
) -> Result<Vec<u8>, StoreError> {
    let mut page = Vec::new();
    for (key, value) in entries {
        let len = u32::try_from(value.len()).map_err(|_| corrupt("receipt too long"))?;
        page.extend_from_slice(key);
        page.extend_from_slice(&len.to_be_bytes());
        page.extend_from_slice(value);
    }
    Ok(page)
}

/// The keys of a page's receipts, 32 bytes each.
fn keys_of(keys: &[u8]) -> impl Iterator<Item = &[u8; 32]> {
    keys.chunks_exact(32).filter_map(|key| key.try_into().ok())
}

/// A receipt as [`Receipts::read`] finds it.
#[derive(Debug)]
struct Stored {
    /// What it has alone (for a compare-and-swap there).
    alone: Option<IVec>,
    /// The receipt: alone, or else its copy in a page.
    current: Option<IVec>,
}

/// The receipts trees and the index of the pages.
#[derive(Debug)]
pub(crate) struct Receipts {
    alone: sled::Tree,
    pages: sled::Tree,
    page_keys: sled::Tree,
    /// Receipt key (128 bits) → its page.
    index: RwLock<HashMap<u128, Loc>>,
    /// The number of the next page (numbers are never reused).
    next_page: AtomicU64,
}

impl Receipts {
    /// Opens the trees in `db` and indexes the pages. Runs before anything else writes
    /// receipts.
    pub(crate) fn open(db: &sled::Db) -> Result<Self, StoreError> {
        let tree = |name: &str| db.open_tree(name).map_err(backend);
        let (alone, pages, page_keys) = (tree(ALONE)?, tree(PAGES)?, tree(PAGE_KEYS)?);
        let mut index = HashMap::new();
        let mut last_page = 0;
        for entry in page_keys.iter() {
            let (at, keys) = entry.map_err(backend)?;
            let loc = page_loc(&at)?;
            last_page = last_page.max(loc.page);
            for key in keys_of(&keys) {
                index.insert(short(key), loc);
            }
        }
        Ok(Self {
            alone,
            pages,
            page_keys,
            index: RwLock::new(index),
            next_page: AtomicU64::new(last_page + 1),
        })
    }

    /// The tree of receipts alone, for a transaction that writes one (see
    /// [`Receipts::paged_copy`]).
    pub(crate) fn tree(&self) -> &sled::Tree {
        &self.alone
    }

    fn loc(&self, key: &[u8; 32]) -> Option<Loc> {
        self.index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&short(key))
            .copied()
    }

    /// Whether sled has a receipt under `key`.
    pub(crate) fn contains(&self, key: &[u8; 32]) -> Result<bool, StoreError> {
        Ok(self.loc(key).is_some() || self.alone.contains_key(key).map_err(backend)?)
    }

    /// The copy of the receipt under `key` in its page, if it was moved in one: what it is
    /// unless it has been written alone since.
    pub(crate) fn paged_copy(&self, key: &[u8; 32]) -> Result<Option<IVec>, StoreError> {
        let Some(loc) = self.loc(key) else {
            return Ok(None);
        };
        let Some(page) = self
            .pages
            .get(page_key(loc.created_at, loc.page))
            .map_err(backend)?
        else {
            return Ok(None);
        };
        Ok(page_entries(&page)?
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, value)| IVec::from(value)))
    }

    /// The receipt under `key` as stored (alone, or else in its page).
    fn read(&self, key: &[u8; 32]) -> Result<Stored, StoreError> {
        let alone = self.alone.get(key).map_err(backend)?;
        let current = match &alone {
            Some(value) => Some(value.clone()),
            None => self.paged_copy(key)?,
        };
        Ok(Stored { alone, current })
    }

    /// The receipt under `key`, as stored.
    pub(crate) fn get(&self, key: &[u8; 32]) -> Result<Option<IVec>, StoreError> {
        Ok(self.read(key)?.current)
    }

    /// Writes `value` as the receipt under `key`, alone.
    pub(crate) fn insert(&self, key: &[u8; 32], value: IVec) -> Result<(), StoreError> {
        self.alone.insert(key, value).map_err(backend)?;
        Ok(())
    }

    /// Writes the receipt under `key` as `next` makes it from what is stored (`None`: no
    /// receipt), unless another write changed it meanwhile, then again from that.
    pub(crate) fn update(
        &self,
        key: &[u8; 32],
        next: impl Fn(Option<&[u8]>) -> Result<Vec<u8>, StoreError>,
    ) -> Result<(), StoreError> {
        loop {
            let stored = self.read(key)?;
            let value = next(stored.current.as_deref())?;
            let swapped = self
                .alone
                .compare_and_swap(key, stored.alone, Some(value))
                .map_err(backend)?;
            if swapped.is_ok() {
                return Ok(());
            }
        }
    }

    /// Writes `entries`, new receipts all created at `created_at` that sled has none of, as
    /// one page. The caller keeps them from every other writer meanwhile.
    pub(crate) fn insert_page(
        &self,
        created_at: u64,
        entries: &[([u8; 32], IVec)],
    ) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let page = self.next_page.fetch_add(1, Ordering::Relaxed);
        let at = page_key(created_at, page);
        let value = encode_page(entries.iter().map(|(key, value)| (key, &value[..])))?;
        let keys: Vec<u8> = entries.iter().flat_map(|(key, _)| *key).collect();
        self.set_page(&at, Some((&value, &keys)))?;
        let loc = Loc { created_at, page };
        let mut index = self.index.write().unwrap_or_else(PoisonError::into_inner);
        for (key, _) in entries {
            index.insert(short(key), loc);
        }
        Ok(())
    }

    /// Writes the page at `at` and its keys (`Some((page, keys))`) or removes both (`None`):
    /// both or neither, since keys without their page would hide receipts a journal replay
    /// must write.
    fn set_page(&self, at: &[u8], page: Option<(&[u8], &[u8])>) -> Result<(), StoreError> {
        (&self.pages, &self.page_keys)
            .transaction(|(pages, page_keys)| {
                match page {
                    Some((page, keys)) => {
                        pages.insert(at, page)?;
                        page_keys.insert(at, keys)?;
                    }
                    None => {
                        pages.remove(at)?;
                        page_keys.remove(at)?;
                    }
                }
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(|e: TransactionError<()>| backend(format!("{e:?}")))?;
        Ok(())
    }

    /// Replaces every stored receipt (alone, or in a page and not alone) that `change`
    /// changes (it returns the new value); how many. A receipt written again meanwhile is
    /// left as it is. `lock` is the store's write lock, taken per value changed.
    pub(crate) fn rewrite(
        &self,
        change: impl Fn(&[u8]) -> Result<Option<Vec<u8>>, StoreError>,
        lock: &std::sync::Mutex<()>,
    ) -> Result<u64, StoreError> {
        let mut changed = 0;
        for entry in self.alone.iter() {
            let (key, value) = entry.map_err(backend)?;
            if let Some(new) = change(&value)? {
                let _write = crate::lock_writes(lock);
                let swapped = self
                    .alone
                    .compare_and_swap(&key, Some(value), Some(new))
                    .map_err(backend)?;
                changed += u64::from(swapped.is_ok());
            }
        }
        for entry in self.pages.iter() {
            let (at, page) = entry.map_err(backend)?;
            let mut entries = Vec::new();
            let mut count = 0;
            for (key, value) in page_entries(&page)? {
                // A copy the receipt alone replaced is never read: left as it is. (Asked of
                // sled only for one `change` would rewrite: most are left anyway.)
                let new = match change(value)? {
                    Some(new) if !self.alone.contains_key(key).map_err(backend)? => Some(new),
                    _ => None,
                };
                count += u64::from(new.is_some());
                entries.push((
                    key,
                    new.map_or(std::borrow::Cow::Borrowed(value), Into::into),
                ));
            }
            if count > 0 {
                let new = encode_page(entries.iter().map(|(key, value)| (*key, value.as_ref())))?;
                let _write = crate::lock_writes(lock);
                let swapped = self
                    .pages
                    .compare_and_swap(&at, Some(page), Some(new))
                    .map_err(backend)?;
                if swapped.is_ok() {
                    changed += count;
                }
            }
        }
        Ok(changed)
    }

    /// Removes every receipt created before `created_before`; how many. A receipt alone is
    /// removed as it was read (one written again meanwhile stays). `lock` is the store's
    /// write lock, taken per value removed, so payments go on meanwhile.
    pub(crate) fn prune(
        &self,
        created_before: u64,
        lock: &std::sync::Mutex<()>,
    ) -> Result<u64, StoreError> {
        let mut pruned = 0;
        for entry in self.page_keys.range(..page_key(created_before, 0)) {
            let (at, keys) = entry.map_err(backend)?;
            let here = page_loc(&at)?;
            let _write = crate::lock_writes(lock);
            self.set_page(&at, None)?;
            let mut gone = Vec::new();
            {
                let mut index = self.index.write().unwrap_or_else(PoisonError::into_inner);
                for key in keys_of(&keys) {
                    if index.get(&short(key)) == Some(&here) {
                        index.remove(&short(key));
                        gone.push(key);
                    }
                }
            }
            // One written alone since is counted below, with that (read outside the index's
            // lock: a sled read for each).
            for key in gone {
                pruned += u64::from(!self.alone.contains_key(key).map_err(backend)?);
            }
        }
        for entry in self.alone.iter() {
            let (key, value) = entry.map_err(backend)?;
            if created_at(&value).is_some_and(|at| at < created_before) {
                let _write = crate::lock_writes(lock);
                let swapped = self
                    .alone
                    .compare_and_swap(&key, Some(value), None as Option<&[u8]>)
                    .map_err(backend)?;
                pruned += u64::from(swapped.is_ok());
            }
        }
        Ok(pruned)
    }

    /// How many receipts sled has in pages.
    #[cfg(test)]
    pub(crate) fn paged(&self) -> usize {
        self.index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// An encoded receipt's bytes as far as this module cares: its creation time, then `body`.
#[cfg(test)]
pub(crate) fn test_value(created_at: u64, body: &[u8]) -> IVec {
    [&created_at.to_be_bytes()[..], body].concat().into()
}

#[cfg(test)]
mod tests {
    use super::test_value as value;
    use super::*;

    #[test]
    fn receipts_alone_and_in_pages_are_found_by_key_and_pruned_by_age() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let receipts = Receipts::open(&db).unwrap();
        let (late, early, a, b) = ([1u8; 32], [9u8; 32], [3u8; 32], [4u8; 32]);
        receipts.insert(&late, value(20, b"late")).unwrap();
        receipts.insert(&early, value(10, b"early")).unwrap();
        let page = [(a, value(12, b"a")), (b, value(12, b"b"))];
        receipts.insert_page(12, &page).unwrap();
        for (key, body) in [(late, &b"late"[..]), (a, b"a"), (b, b"b")] {
            assert_eq!(receipts.get(&key).unwrap().unwrap()[8..], *body);
            assert!(receipts.contains(&key).unwrap());
        }
        assert_eq!(receipts.get(&[5; 32]).unwrap(), None);
        assert!(!receipts.contains(&[5; 32]).unwrap());

        // A write after the move goes alone and wins over the page's copy.
        receipts
            .update(&a, |current| {
                assert_eq!(current.map(|c| &c[8..]), Some(&b"a"[..]));
                Ok(value(12, b"a again").to_vec())
            })
            .unwrap();
        assert_eq!(receipts.get(&a).unwrap(), Some(value(12, b"a again")));
        assert_eq!(receipts.paged_copy(&a).unwrap(), Some(value(12, b"a")));

        let lock = std::sync::Mutex::new(());
        let changed = receipts
            .rewrite(
                |v| Ok((v[8..] != b"late"[..]).then(|| [v, b"!"].concat())),
                &lock,
            )
            .unwrap();
        assert_eq!(
            changed, 3,
            "early, a alone and b in its page; not a's old copy"
        );
        assert_eq!(receipts.get(&b).unwrap(), Some(value(12, b"b!")));
        assert_eq!(receipts.paged_copy(&a).unwrap(), Some(value(12, b"a")));

        assert_eq!(
            receipts.prune(15, &lock).unwrap(),
            3,
            "early, and a and b once each"
        );
        for key in [early, a, b] {
            assert_eq!(receipts.get(&key).unwrap(), None);
        }
        assert!(receipts.contains(&late).unwrap() && receipts.paged() == 0);
        assert_eq!(receipts.prune(15, &lock).unwrap(), 0);
    }

    #[test]
    fn the_pages_index_is_rebuilt_at_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            let receipts = Receipts::open(&db).unwrap();
            receipts.insert(&[4; 32], value(8, b"alone")).unwrap();
            let page = [([5; 32], value(9, b"paged")), ([6; 32], value(9, b"first"))];
            receipts.insert_page(9, &page).unwrap();
            receipts.insert(&[6; 32], value(9, b"second")).unwrap();
            db.flush().unwrap();
        }
        let db = sled::open(dir.path()).unwrap();
        let receipts = Receipts::open(&db).unwrap();
        assert_eq!(receipts.paged(), 2);
        assert_eq!(receipts.get(&[4; 32]).unwrap(), Some(value(8, b"alone")));
        assert_eq!(receipts.get(&[5; 32]).unwrap(), Some(value(9, b"paged")));
        assert_eq!(
            receipts.get(&[6; 32]).unwrap(),
            Some(value(9, b"second")),
            "a receipt alone wins over its copy in a page"
        );
        receipts
            .insert_page(9, &[([7; 32], value(9, b"next page"))])
            .unwrap();
        assert_eq!(
            receipts.get(&[5; 32]).unwrap(),
            Some(value(9, b"paged")),
            "page numbers go on after a restart"
        );
    }
}
