use super::*;

const A: [u8; 32] = [7; 32];
const B: [u8; 32] = [9; 32];

fn channel() -> Slot {
    Slot::channel(uuid::Uuid::from_u128(1))
}

#[test]
fn a_sealed_secret_opens_to_itself_and_does_not_contain_it() {
    let ring = Keyring::new(&A, &[]);
    let sealed = ring.seal(&channel(), "whsec_c2VjcmV0").unwrap();
    assert!(!sealed.contains("whsec_c2VjcmV0"), "{sealed}");
    assert!(sealed.starts_with(&format!("v1:{}:", ring.current_id())));
    assert!(ring.is_current(&sealed));
    assert_eq!(ring.open(&channel(), &sealed).unwrap(), "whsec_c2VjcmV0");
}

#[test]
fn every_seal_uses_a_new_nonce() {
    let ring = Keyring::new(&A, &[]);
    let one = ring.seal(&channel(), "whsec_x").unwrap();
    let two = ring.seal(&channel(), "whsec_x").unwrap();
    assert_ne!(one, two);
}

#[test]
fn a_value_moved_to_another_row_or_column_is_refused() {
    let ring = Keyring::new(&A, &[]);
    let id = uuid::Uuid::from_u128(1);
    let sealed = ring.seal(&Slot::channel(id), "whsec_x").unwrap();
    for other in [
        Slot::channel(uuid::Uuid::from_u128(2)),
        Slot::tenant(id),
        Slot::callback(id, "checkout"),
    ] {
        assert!(
            matches!(ring.open(&other, &sealed), Err(SealError::Refused { .. })),
            "{other:?}"
        );
    }
}

#[test]
fn an_altered_ciphertext_is_refused() {
    let ring = Keyring::new(&A, &[]);
    let sealed = ring.seal(&channel(), "whsec_x").unwrap();
    let (head, data) = sealed.rsplit_once(':').unwrap();
    let mut bytes = STANDARD.decode(data).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let altered = format!("{head}:{}", STANDARD.encode(bytes));
    assert!(matches!(
        ring.open(&channel(), &altered),
        Err(SealError::Refused { .. })
    ));
}

#[test]
fn old_keys_open_but_only_the_current_one_seals() {
    let old = Keyring::new(&A, &[]);
    let sealed = old.seal(&channel(), "whsec_x").unwrap();
    let rotated = Keyring::new(&B, &[A]);
    assert!(!rotated.is_current(&sealed));
    assert_eq!(rotated.open(&channel(), &sealed).unwrap(), "whsec_x");
    let again = rotated.seal(&channel(), "whsec_x").unwrap();
    assert!(rotated.is_current(&again));
    assert_eq!(
        Keyring::new(&B, &[]).open(&channel(), &again).unwrap(),
        "whsec_x"
    );
}

#[test]
fn a_value_sealed_with_a_key_not_in_the_keyring_names_the_key() {
    let sealed = Keyring::new(&A, &[]).seal(&channel(), "whsec_x").unwrap();
    let err = Keyring::new(&B, &[]).open(&channel(), &sealed).unwrap_err();
    assert_eq!(
        err,
        SealError::UnknownKey {
            slot: format!("channels.secret:{}", uuid::Uuid::from_u128(1)),
            key_id: key_id(&A),
            current: key_id(&B),
        }
    );
    assert!(err.to_string().contains("AWFDRS_SECRETS_OLD_KEYS"), "{err}");
}

#[test]
fn plain_text_from_before_sealing_reads_as_it_is() {
    let ring = Keyring::new(&A, &[]);
    assert_eq!(
        ring.open(&channel(), "whsec_legacy").unwrap(),
        "whsec_legacy"
    );
    assert!(!ring.is_current("whsec_legacy"));
}

#[test]
fn malformed_sealed_values_are_refused_with_a_reason() {
    let ring = Keyring::new(&A, &[]);
    let id = ring.current_id().to_owned();
    for bad in [
        "v2:abc:def".to_owned(),
        "v1:".to_owned(),
        "v1:abc".to_owned(),
        format!("v1:{id}:not base64!"),
        format!("v1:{id}:AAAA"),
    ] {
        assert!(
            matches!(
                ring.open(&channel(), &bad),
                Err(SealError::Malformed { .. })
            ),
            "{bad}"
        );
    }
}

#[test]
fn key_ids_are_short_stable_fingerprints() {
    assert_eq!(key_id(&A), key_id(&A));
    assert_ne!(key_id(&A), key_id(&B));
    assert_eq!(key_id(&A).len(), 12);
    let debug = format!("{:?}", Keyring::new(&A, &[B]));
    assert!(
        debug.contains(&key_id(&A)) && debug.contains(&key_id(&B)),
        "{debug}"
    );
}
