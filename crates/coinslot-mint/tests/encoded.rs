//! Payments with proofs whose `C` stays encoded ([`EncodedProof`]): the mint checks the bytes
//! against the signature it expects, so a forged or malformed `C` is refused as unverified and
//! spends nothing, and a good one pays exactly as the decoded proof would.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::sync::Arc;

use coinslot_mint::cashu::nuts::{CurrencyUnit, Proof};
use coinslot_mint::{
    receipt_key, EncodedProof, Error, FakeBackend, Inputs, MemoryStore, Mint, MintConfig, MintSeed,
    Payment, Purchase,
};

async fn mint() -> Mint {
    Mint::new(
        MintConfig::default(),
        MintSeed::generate(),
        Arc::new(MemoryStore::new()),
        Arc::new(FakeBackend::new(Default::default())),
    )
    .await
    .unwrap()
}

fn encoded(proof: &Proof) -> EncodedProof {
    EncodedProof {
        amount: proof.amount.into(),
        keyset_id: proof.keyset_id,
        secret: proof.secret.clone(),
        c: proof.c.to_bytes(),
        dleq: proof.dleq.clone(),
    }
}

fn price(key: [u8; 32]) -> Payment {
    Payment {
        unit: CurrencyUnit::Sat,
        buys: Purchase::Price(1),
        require_lock: false,
        receipt: Some((key, Box::new(|_, _| b"paid".to_vec()))),
    }
}

#[tokio::test]
async fn an_encoded_proof_pays_once_and_decodes_to_itself() {
    let mint = mint().await;
    let proofs = mint.make_proofs(&CurrencyUnit::Sat, 5).await.unwrap();
    let inputs = Inputs::Encoded(proofs.iter().map(encoded).collect());
    assert_eq!(inputs.len(), 2);
    assert_eq!(
        inputs.receipt_key(),
        receipt_key(&proofs),
        "one key per payment"
    );
    for proof in &proofs {
        assert_eq!(encoded(proof).decode().as_ref(), Some(proof));
    }

    let paid = mint
        .redeem(inputs.clone(), price(inputs.receipt_key()))
        .await
        .expect("a good encoded token pays");
    assert_eq!((paid.total, paid.kept, paid.change.len()), (5, 1, 1));
    let again = mint.redeem(inputs, price(receipt_key(&proofs))).await;
    assert!(matches!(again, Err(Error::TokenAlreadySpent)), "{again:?}");
    let decoded = mint.redeem(proofs, price([0; 32])).await;
    assert!(
        matches!(decoded, Err(Error::TokenAlreadySpent)),
        "{decoded:?}"
    );
}

#[tokio::test]
async fn a_forged_or_malformed_signature_is_refused_and_spends_nothing() {
    let mint = mint().await;
    let sat = CurrencyUnit::Sat;
    let (good, other) = (
        mint.make_proofs(&sat, 1).await.unwrap(),
        mint.make_proofs(&sat, 1).await.unwrap(),
    );
    let mut forged = encoded(&good[0]);
    forged.c = other[0].c.to_bytes(); // a valid point, another secret's signature
    let mut flipped = encoded(&good[0]);
    flipped.c[0] ^= 1; // the same x, the other y: the negated point
    let mut no_point = encoded(&good[0]);
    no_point.c[0] = 0x05; // no such prefix
    let mut zero = encoded(&good[0]);
    zero.c = [0; 33];
    for bad in [forged, flipped, no_point.clone(), zero] {
        let refused = mint
            .redeem(Inputs::Encoded(vec![bad]), price([1; 32]))
            .await;
        assert!(
            matches!(refused, Err(Error::TokenNotVerified)),
            "{refused:?}"
        );
    }
    assert_eq!(no_point.decode(), None);
    mint.redeem(Inputs::Encoded(vec![encoded(&good[0])]), price([2; 32]))
        .await
        .expect("the refusals spent nothing");
}
