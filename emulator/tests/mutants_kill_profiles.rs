//! Behaviour of the profiles that `cargo mutants` showed no other test pinned down (README
//! "Mutation testing"): how the ISO arms every profile shares (`profile/iso.rs`) and each
//! profile's own arms (`cns.rs`, `oberthur.rs`, `incrypto34/`) decode an APDU into the
//! command the card executes, the status word a host gets for each malformed one, and what
//! each profile's personalisation writes. Each test names the rule it holds, and the comment
//! above it the mutants it kills. Parsers are called directly (with each profile's hooks) so
//! that one decoding fact is checked at a time; the SWs are those the card answers, and
//! card behaviour is checked APDU in, bytes and status word out.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use firmalab_emulator::apdu::Apdu;
use firmalab_emulator::command::{
    Command, DataObject, KeyGen, KeySelector, NewFile, NewFileKind, PinRef, PinScope, SecOp, Select, SelectTarget,
    SignPadding, UnblockProof,
};
use firmalab_emulator::fs::{AccessCondition, Acl};
use firmalab_emulator::hex::Hex8;
use firmalab_emulator::keys::Algorithm;
use firmalab_emulator::profile::iso;
use firmalab_emulator::{ProfileKind, Sw};

/// The ISO arms' decoding of `cmd` (hex) with `kind`'s hooks.
fn iso_parse(kind: ProfileKind, cmd: &str) -> Result<Command<'static>, Sw> {
    let bytes: &'static [u8] = Box::leak(h(cmd).into_boxed_slice());
    let apdu = Apdu::parse(bytes).unwrap_or_else(|sw| panic!("{cmd}: not an APDU ({sw:?})"));
    iso::parse(kind.profile(), &apdu)
}

fn cns(cmd: &str) -> Result<Command<'static>, Sw> {
    iso_parse(ProfileKind::Cns, cmd)
}

fn select(target: SelectTarget<'static>, return_fcp: bool) -> Result<Command<'static>, Sw> {
    Ok(Command::Select(Select { target, return_fcp }))
}

// iso.rs `select`: the P2 match (`0x00 | 0x04`, `0x0C` arms deleted, `& 0xFC` → `|`/`^`),
// the occurrence rule (`& 0x03` → `|`, `!=` → `==`, `&&` → `||`), every P1 arm (deleted,
// `is_empty` / `len() > 16` / `is_multiple_of` conditions negated or `>` → `>=`/`==`/`<`,
// `||` → `&&`, `p1 == 0x08` → `!=`), and `fid_of`.
#[test]
fn select_decodes_p1_p2_into_target_and_fcp_and_answers_6a86_or_6700_for_the_rest() {
    // P2: 00 / 04 return the FCP, 0C does not, anything else is 6A86.
    assert_eq!(cns("00A4000C"), select(SelectTarget::Fid(0x3F00), false));
    assert_eq!(cns("00A40000"), select(SelectTarget::Fid(0x3F00), true));
    assert_eq!(cns("00A40004"), select(SelectTarget::Fid(0x3F00), true));
    assert_eq!(cns("00A40008"), Err(Sw::WrongP1P2));
    assert_eq!(cns("00A40010"), Err(Sw::WrongP1P2));
    assert_eq!(cns("00A4008C"), Err(Sw::WrongP1P2));
    // P1 00: the MF with no data, else exactly one FID.
    assert_eq!(cns("00A4000C025015"), select(SelectTarget::Fid(0x5015), false));
    assert_eq!(cns("00A4000C0150"), Err(Sw::WrongLength));
    assert_eq!(cns("00A4000C03501544"), Err(Sw::WrongLength));
    // Occurrence bits (P2 b1-b2) only with a DF name.
    assert_eq!(cns("00A4000D025015"), Err(Sw::WrongP1P2));
    assert_eq!(cns("00A4000E025015"), Err(Sw::WrongP1P2));
    assert_eq!(cns("00A4080D025015"), Err(Sw::WrongP1P2));
    // P1 03: the parent, no data.
    assert_eq!(cns("00A4030C"), select(SelectTarget::Parent, false));
    assert_eq!(cns("00A40300"), select(SelectTarget::Parent, true));
    assert_eq!(cns("00A4030C025015"), Err(Sw::WrongLength));
    // P1 04: a DF name of 1 to 16 bytes, first occurrence only.
    let aid16 = "A0000000000000000000000000000001";
    assert_eq!(cns(&format!("00A4040C10{aid16}")), select(SelectTarget::DfName(&h(aid16).leak()[..]), false));
    assert_eq!(cns("00A4040001A0"), select(SelectTarget::DfName(&[0xA0]), true));
    assert_eq!(cns(&format!("00A4040C11{aid16}02")), Err(Sw::WrongLength));
    assert_eq!(cns("00A4040C"), Err(Sw::WrongLength));
    assert_eq!(cns("00A4040201A0"), Err(Sw::FileNotFound));
    assert_eq!(cns("00A4040E01A0"), Err(Sw::FileNotFound));
    assert_eq!(cns("00A4040301A0"), Err(Sw::FileNotFound));
    // P1 08 / 09: a path of whole FIDs, from the MF or from the current DF.
    assert_eq!(cns("00A4080C0450155031"), select(SelectTarget::PathFromMf(&[0x50, 0x15, 0x50, 0x31]), false));
    assert_eq!(cns("00A4090C025031"), select(SelectTarget::PathFromCurrent(&[0x50, 0x31]), false));
    assert_eq!(cns("00A4090002503100"), select(SelectTarget::PathFromCurrent(&[0x50, 0x31]), true));
    for p1 in ["08", "09"] {
        assert_eq!(cns(&format!("00A4{p1}0C")), Err(Sw::WrongLength), "P1 {p1}, no path");
        assert_eq!(cns(&format!("00A4{p1}0C0150")), Err(Sw::WrongLength), "P1 {p1}, odd path");
        assert_eq!(cns(&format!("00A4{p1}0C03501550")), Err(Sw::WrongLength), "P1 {p1}, odd path");
    }
    // Any other P1.
    for p1 in ["01", "02", "05", "0A", "80"] {
        assert_eq!(cns(&format!("00A4{p1}0C025015")), Err(Sw::WrongP1P2), "P1 {p1}");
    }
}

// iso.rs READ / UPDATE BINARY arms and `binary_offset`: `no_data` → `Ok(())`, the
// `is_empty` check negated or deleted, `& 0x80` → `|`, `!=` → `==`, `<<` → `>>`,
// `unwrap_or(256)`.
#[test]
fn binary_commands_take_a_15_bit_offset_from_p1_p2_and_refuse_the_short_ef_form_with_6a86() {
    assert_eq!(cns("00B0012310"), Ok(Command::ReadBinary { offset: 0x123, le: 16 }));
    assert_eq!(cns("00B07FFF01"), Ok(Command::ReadBinary { offset: 0x7FFF, le: 1 }));
    assert_eq!(cns("00B00000"), Ok(Command::ReadBinary { offset: 0, le: 256 }));
    assert_eq!(cns("00B0000000"), Ok(Command::ReadBinary { offset: 0, le: 256 }));
    assert_eq!(cns("00B0800010"), Err(Sw::WrongP1P2));
    assert_eq!(cns("00B0810010"), Err(Sw::WrongP1P2));
    assert_eq!(cns("00B0000001AA10"), Err(Sw::WrongLength));
    assert_eq!(cns("00D6020002AABB"), Ok(Command::UpdateBinary { offset: 0x200, data: &[0xAA, 0xBB] }));
    assert_eq!(cns("00D60007021122"), Ok(Command::UpdateBinary { offset: 7, data: &[0x11, 0x22] }));
    assert_eq!(cns("00D6800002AABB"), Err(Sw::WrongP1P2));
    assert_eq!(cns("00D60000"), Err(Sw::WrongLength));
}

// iso.rs record arms (READ / UPDATE / APPEND RECORD) and `record_number`: `!= 0x04` → `==`,
// `p1 == 0` → `!=`, `||` → `&&`, `p1p2_zero` → `Ok(())`, `==` → `!=` in it, the
// `is_empty` checks negated.
#[test]
fn record_commands_address_records_by_number_with_p2_04_and_append_takes_p1_p2_00() {
    assert_eq!(cns("00B2030410"), Ok(Command::ReadRecord { record: 3, le: 16 }));
    assert_eq!(cns("00B20104"), Ok(Command::ReadRecord { record: 1, le: 256 }));
    assert_eq!(cns("00B2000410"), Err(Sw::WrongP1P2));
    assert_eq!(cns("00B2030C10"), Err(Sw::WrongP1P2));
    assert_eq!(cns("00B2000C10"), Err(Sw::WrongP1P2));
    assert_eq!(cns("00B2010401AA"), Err(Sw::WrongLength));
    assert_eq!(cns("00DC0204021122"), Ok(Command::UpdateRecord { record: 2, data: &[0x11, 0x22] }));
    assert_eq!(cns("00DC020C021122"), Err(Sw::WrongP1P2));
    assert_eq!(cns("00DC0004021122"), Err(Sw::WrongP1P2));
    assert_eq!(cns("00DC0204"), Err(Sw::WrongLength));
    assert_eq!(cns("00E20000021122"), Ok(Command::AppendRecord { data: &[0x11, 0x22] }));
    assert_eq!(cns("00E20100021122"), Err(Sw::WrongP1P2));
    assert_eq!(cns("00E20001021122"), Err(Sw::WrongP1P2));
    assert_eq!(cns("00E20000"), Err(Sw::WrongLength));
}

// iso.rs VERIFY and CHANGE REFERENCE DATA arms: `p1 != 0` → `==`, the `is_empty` choice
// of `data` negated, the PIN reference from the profile's hook.
#[test]
fn verify_and_change_take_p1_00_and_the_pin_the_profile_reads_in_p2() {
    let local1 = PinRef { reference: 1, scope: PinScope::Local };
    assert_eq!(cns("00200081"), Ok(Command::Verify { pin: local1, data: None }));
    assert_eq!(cns("002000810431323334"), Ok(Command::Verify { pin: local1, data: Some(&[0x31, 0x32, 0x33, 0x34]) }));
    assert_eq!(cns("00200181"), Err(Sw::WrongP1P2));
    assert_eq!(cns("00200080"), Err(Sw::WrongP1P2), "CNS: no PIN 0");
    assert_eq!(cns("00240081023132"), Ok(Command::ChangeReferenceData { pin: local1, data: &[0x31, 0x32] }));
    assert_eq!(cns("00240181023132"), Err(Sw::WrongP1P2));
    // Oberthur numbers the user PIN 81 for CHANGE and RESET RETRY COUNTER.
    let ober = |cmd| iso_parse(ProfileKind::Oberthur, cmd);
    let user = PinRef { reference: 0x81, scope: PinScope::Anywhere };
    assert_eq!(ober("00240001023132"), Ok(Command::ChangeReferenceData { pin: user, data: &[0x31, 0x32] }));
    assert_eq!(
        ober("002C010102AABB"),
        Ok(Command::ResetRetryCounter { pin: user, proof: UnblockProof::Puk(&[0xAA, 0xBB]), new_pin: None })
    );
}

// iso.rs `reset_retry_counter`: the P1 00 arm (deleted, `is_empty` / `is_multiple_of`
// negated, `||` → `&&`, `/ 2` → `* 2` / `% 2`), the P1 01 arm deleted.
#[test]
fn reset_retry_counter_splits_puk_and_new_pin_in_halves_with_p1_00_and_takes_the_puk_alone_with_p1_01() {
    let pin = PinRef { reference: 1, scope: PinScope::Local };
    assert_eq!(
        cns("002C008104AABB1122"),
        Ok(Command::ResetRetryCounter { pin, proof: UnblockProof::Puk(&[0xAA, 0xBB]), new_pin: Some(&[0x11, 0x22]) })
    );
    assert_eq!(
        cns("002C008102AA11"),
        Ok(Command::ResetRetryCounter { pin, proof: UnblockProof::Puk(&[0xAA]), new_pin: Some(&[0x11]) })
    );
    assert_eq!(cns("002C008103AABB11"), Err(Sw::WrongLength));
    assert_eq!(cns("002C008101AA"), Err(Sw::WrongLength));
    assert_eq!(cns("002C0081"), Err(Sw::WrongLength));
    assert_eq!(
        cns("002C018103AABBCC"),
        Ok(Command::ResetRetryCounter { pin, proof: UnblockProof::Puk(&[0xAA, 0xBB, 0xCC]), new_pin: None })
    );
    assert_eq!(cns("002C028102AABB"), Err(Sw::WrongP1P2));
}

// iso.rs `mse` and `mse_op`: RESTORE (`no_data`, the SE number), SET with P1 F1 or 41 (the
// arm and its alternatives), the CRT tag in P2 (each arm deleted), the TLV loop (`!` deleted
// in `while !rest.is_empty()`, the `83` / `84` guards, `==` → `!=`), other P1.
#[test]
fn mse_restores_an_se_or_sets_the_key_reference_or_pending_key_of_a_crt_and_refuses_the_rest_with_6a80() {
    assert_eq!(cns("0022F303"), Ok(Command::MseRestore { se: 3 }));
    assert_eq!(cns("0022F30100"), Ok(Command::MseRestore { se: 1 }));
    assert_eq!(cns("0022F30303830101"), Err(Sw::WrongLength));
    assert_eq!(cns("0022F1B603830101"), Ok(Command::MseSet { op: SecOp::Sign, key: KeySelector::Reference(1) }));
    assert_eq!(cns("002241B603830102"), Ok(Command::MseSet { op: SecOp::Sign, key: KeySelector::Reference(2) }));
    assert_eq!(cns("002241B803840105"), Ok(Command::MseSet { op: SecOp::Decipher, key: KeySelector::Pending(5) }));
    // Several data objects: the last key reference counts; an unknown tag is refused.
    assert_eq!(cns("002241B606830101840107"), Ok(Command::MseSet { op: SecOp::Sign, key: KeySelector::Pending(7) }));
    assert_eq!(cns("002241B603800101"), Err(Sw::WrongData));
    assert_eq!(cns("002241B606800112830101"), Err(Sw::WrongData));
    assert_eq!(cns("002241B60483020101"), Err(Sw::WrongData), "a key reference is one byte");
    assert_eq!(cns("002241B602830A"), Err(Sw::WrongData), "a cut data object");
    assert_eq!(cns("002241B6"), Err(Sw::WrongData), "no key reference");
    assert_eq!(cns("002241A403830101"), Err(Sw::WrongP1P2), "an authentication CRT");
    assert_eq!(cns("002281B603830101"), Err(Sw::WrongP1P2));
    assert_eq!(iso::mse_op(0xB6), Ok(SecOp::Sign));
    assert_eq!(iso::mse_op(0xB8), Ok(SecOp::Decipher));
    assert_eq!(iso::mse_op(0xA4), Err(Sw::WrongP1P2));
}

// iso.rs `pso`: `padding == Raw` → `!=`, the 9E 9A and 80 86 arms (`is_empty` negated),
// the padding-indicator match (guard `!rest.is_empty()` negated, arms deleted), `unpad:
// !decipher_indicator` (`!` deleted).
#[test]
fn pso_passes_the_signature_input_and_strips_the_padding_indicator_only_on_a_raw_card() {
    // CNS: raw RSA, the cryptogram comes after a padding indicator 00.
    assert_eq!(
        cns("002A9E9A021122"),
        Ok(Command::ComputeSignature { input: &[0x11, 0x22], padding: SignPadding::Raw })
    );
    assert_eq!(cns("002A9E9A00"), Err(Sw::WrongLength));
    assert_eq!(cns("002A9E9A"), Err(Sw::WrongLength));
    assert_eq!(cns("002A808603001122"), Ok(Command::Decipher { input: &[0x11, 0x22], unpad: false }));
    assert_eq!(cns("002A808603011122"), Err(Sw::WrongData), "indicator other than 00");
    assert_eq!(cns("002A80860100"), Err(Sw::WrongData), "an indicator and no cryptogram");
    assert_eq!(cns("002A8086"), Err(Sw::WrongLength));
    assert_eq!(cns("002A9E9B021122"), Err(Sw::WrongP1P2));
    assert_eq!(cns("002A8087021122"), Err(Sw::WrongP1P2));
    // Oberthur: the card pads and unpads; the cryptogram comes bare.
    let ober = |cmd| iso_parse(ProfileKind::Oberthur, cmd);
    assert_eq!(
        ober("002A9E9A021122"),
        Ok(Command::ComputeSignature { input: &[0x11, 0x22], padding: SignPadding::Pkcs1 })
    );
    assert_eq!(ober("002A808603001122"), Ok(Command::Decipher { input: &[0x00, 0x11, 0x22], unpad: true }));
    assert_eq!(ober("002A8086021122"), Ok(Command::Decipher { input: &[0x11, 0x22], unpad: true }));
    assert_eq!(ober("002A8086"), Err(Sw::WrongLength));
}

// iso.rs GET CHALLENGE, GET DATA, GET RESPONSE arms: `len <= 256` → `<` / `>`, the guard
// → `true`/`false`, `no_data` / `p1p2_zero` → `Ok(())`, the `0x00 | 0x80` class
// alternatives, `unwrap_or(256)`, and the fallback `InsNotSupported`.
#[test]
fn challenge_data_and_response_arms_check_p1_p2_data_and_le() {
    assert_eq!(cns("0084000008"), Ok(Command::GetChallenge { len: 8 }));
    assert_eq!(cns("0084000000"), Ok(Command::GetChallenge { len: 256 }));
    assert_eq!(cns("00840000000100"), Ok(Command::GetChallenge { len: 256 }));
    assert_eq!(cns("00840000000101"), Err(Sw::WrongLength));
    assert_eq!(cns("00840000"), Err(Sw::WrongLength));
    assert_eq!(cns("0084010008"), Err(Sw::WrongP1P2));
    assert_eq!(cns("0084000108"), Err(Sw::WrongP1P2));
    assert_eq!(cns("008400000111"), Err(Sw::WrongLength));
    assert_eq!(cns("00CA018300"), Ok(Command::GetData(DataObject::LifeCycle)));
    assert_eq!(cns("00CA018800"), Ok(Command::GetData(DataObject::Extensions)));
    assert_eq!(cns("00CA018400"), Err(Sw::ReferencedDataNotFound));
    assert_eq!(cns("00CA01830111"), Err(Sw::WrongLength));
    let ober = |cmd| iso_parse(ProfileKind::Oberthur, cmd);
    assert_eq!(ober("80CA9F7F00"), Ok(Command::GetData(DataObject::Cplc)));
    assert_eq!(ober("00CA9F7F00"), Err(Sw::ReferencedDataNotFound));
    assert_eq!(cns("00C0000010"), Ok(Command::GetResponse { le: 16 }));
    assert_eq!(cns("00C00000"), Ok(Command::GetResponse { le: 256 }));
    assert_eq!(cns("00C0010010"), Err(Sw::WrongP1P2));
    assert_eq!(cns("00C0000110"), Err(Sw::WrongP1P2));
    assert_eq!(cns("00C000000111"), Err(Sw::WrongLength));
    assert_eq!(cns("0044000000"), Err(Sw::InsNotSupported));
    assert_eq!(cns("80A4000C"), Err(Sw::InsNotSupported), "SELECT in a proprietary class");
    assert_eq!(cns("8084000008"), Err(Sw::InsNotSupported));
}

// The helpers the profiles share: `no_data`, `p1p2_zero`, `fid_of` (→ `Ok(0)` / `Ok(1)`,
// `Ok(())`, `==` → `!=`).
#[test]
fn shared_helpers_refuse_data_nonzero_p1_p2_and_fids_that_are_not_two_bytes() {
    let apdu = |cmd: &str| Apdu::parse(Box::leak(h(cmd).into_boxed_slice())).unwrap();
    assert_eq!(iso::no_data(&apdu("00C00000")), Ok(()));
    assert_eq!(iso::no_data(&apdu("00C0000001AA")), Err(Sw::WrongLength));
    assert_eq!(iso::p1p2_zero(&apdu("00C00000")), Ok(()));
    assert_eq!(iso::p1p2_zero(&apdu("00C00100")), Err(Sw::WrongP1P2));
    assert_eq!(iso::p1p2_zero(&apdu("00C00001")), Err(Sw::WrongP1P2));
    assert_eq!(iso::fid_of(&[0x50, 0x15]), Ok(0x5015));
    assert_eq!(iso::fid_of(&[0x3F, 0x00]), Ok(0x3F00));
    assert_eq!(iso::fid_of(&[0x50]), Err(Sw::WrongLength));
    assert_eq!(iso::fid_of(&[0x50, 0x15, 0x00]), Err(Sw::WrongLength));
    assert_eq!(iso::record_number(&apdu("00B20504")), Ok(5));
    assert_eq!(iso::record_number(&apdu("00B20004")), Err(Sw::WrongP1P2));
}

// End to end, what a host sees: the card answers the parser's refusals with their status
// word on every profile that hands these arms to iso.rs.
#[test]
fn the_card_answers_the_iso_parsers_refusals_with_their_status_words() {
    for fixture in ["cns-renewable.json", "oberthur-renewable.json", "incrypto34-issued.json"] {
        let mut s = Session::new(fixture);
        s.table(&[
            ("00A40008", "6A86"),
            ("00A4040C", "6700"),
            ("00A4000C0150", "6700"),
            ("00B0800010", "6A86"),
            ("00840000000101", "6700"),
            ("00C0000110", "6A86"),
        ]);
    }
}

// ---- profile/cns.rs ----

/// The CNS profile's decoding of `cmd` (its own arms, then the ISO ones).
fn cns_own(cmd: &str) -> Result<Command<'static>, Sw> {
    let bytes: &'static [u8] = Box::leak(h(cmd).into_boxed_slice());
    let apdu = Apdu::parse(bytes).unwrap_or_else(|sw| panic!("{cmd}: not an APDU ({sw:?})"));
    ProfileKind::Cns.profile().parse(&apdu)
}

// cns.rs `Cns::parse`: the record-write refusal, COMMIT (`p1 == 0x81` guard, `is_empty`),
// GENERATE KEY PAIR (P1 00 / 80 arms, the algorithm match), CREATE / DELETE FILE
// (`p1p2_zero`), ERASE (`no_data`, `p1p2_zero`), and the hand-over to the ISO arms.
#[test]
fn cns_own_arms_decode_commit_generate_create_delete_and_erase() {
    assert_eq!(cns_own("00DC0104021122"), Err(Sw::InsNotSupported), "no record EFs on the CNS");
    assert_eq!(cns_own("00E20000021122"), Err(Sw::InsNotSupported));
    assert_eq!(cns_own("00468101023082"), Ok(Command::CommitKey { key: 1, certificate: &[0x30, 0x82] }));
    assert_eq!(cns_own("00468110"), Err(Sw::WrongLength), "a commit carries the certificate");
    let slot = |key, algorithm, pending| Ok(Command::GenerateKeyPair(KeyGen::Slot { key, algorithm, pending }));
    assert_eq!(cns_own("00460001020400"), slot(1, Algorithm::Rsa1024, false));
    assert_eq!(cns_own("00468010020800"), slot(0x10, Algorithm::Rsa2048, true));
    assert_eq!(cns_own("004600020A06082A8648CE3D030107"), slot(2, Algorithm::EcP256, false));
    assert_eq!(cns_own("00460001020600"), Err(Sw::WrongData));
    assert_eq!(cns_own("0046000103040000"), Err(Sw::WrongLength));
    assert_eq!(cns_own("00460001"), Err(Sw::WrongLength));
    assert_eq!(cns_own("00460101020800"), Err(Sw::WrongP1P2));
    assert_eq!(cns_own("00468201020800"), Err(Sw::WrongP1P2));
    assert_eq!(cns_own("00E4000002A001"), Ok(Command::DeleteFile { fid: 0xA001, df: None }));
    assert_eq!(cns_own("00E4010002A001"), Err(Sw::WrongP1P2));
    assert_eq!(cns_own("00E4000102A001"), Err(Sw::WrongP1P2));
    assert_eq!(cns_own("00E4000001A0"), Err(Sw::WrongLength));
    assert_eq!(cns_own("B0F50000"), Ok(Command::EraseCard));
    assert_eq!(cns_own("B0F50100"), Err(Sw::WrongP1P2));
    assert_eq!(cns_own("B0F50001"), Err(Sw::WrongP1P2));
    assert_eq!(cns_own("B0F5000001AA"), Err(Sw::WrongLength));
    assert_eq!(cns_own("00E0010000"), Err(Sw::WrongP1P2));
    assert_eq!(cns_own("00A4000C"), select(SelectTarget::Fid(0x3F00), false), "the rest is ISO");
}

// cns.rs `parse_create`: each FCP tag arm, the FID refusals (`==` → `!=`, `||` → `&&`), the
// descriptor match, the default and the DF / EF access-byte mappings (`ac_of` ranges).
#[test]
fn cns_create_file_decodes_the_fcp_into_fid_kind_and_access_conditions() {
    let always = AccessCondition::Always;
    let open = Acl { read: always, update: always, create: always, delete: always };
    let create = |fcp: &str| cns_own(&format!("00E00000{:02X}{fcp}", fcp.len() / 2));
    // A transparent EF, size in 80 or 81, FID in 83, no access bytes: everything allowed.
    assert_eq!(
        create("620B8002012C820101830210AA"),
        Ok(Command::CreateFile(NewFile { fid: 0x10AA, kind: NewFileKind::Transparent { size: 300 }, acl: open }))
    );
    assert_eq!(
        create("620A81010A820101830210AB"),
        Ok(Command::CreateFile(NewFile { fid: 0x10AB, kind: NewFileKind::Transparent { size: 10 }, acl: open }))
    );
    // A DF.
    assert_eq!(
        create("6207820138830214AA"),
        Ok(Command::CreateFile(NewFile { fid: 0x14AA, kind: NewFileKind::Df, acl: open }))
    );
    // EF access bytes: READ [0], UPDATE [1], DELETE [5]; no CREATE on an EF.
    let pin = |r| AccessCondition::Pin(Hex8(r));
    assert_eq!(
        create("62168002000A820101830210AA8609001F0000002000FFFF"),
        Ok(Command::CreateFile(NewFile {
            fid: 0x10AA,
            kind: NewFileKind::Transparent { size: 10 },
            acl: Acl {
                read: always,
                update: pin(0x1F),
                create: AccessCondition::Never,
                delete: AccessCondition::Never
            },
        }))
    );
    assert_eq!(
        create("62168002000A820101830210AA86091001FFFFFF11FFFFFF"),
        Ok(Command::CreateFile(NewFile {
            fid: 0x10AA,
            kind: NewFileKind::Transparent { size: 10 },
            acl: Acl { read: pin(0x10), update: pin(0x01), create: AccessCondition::Never, delete: pin(0x11) },
        }))
    );
    // DF access bytes: UPDATE [1], DELETE [5], CREATE [7]; READ always.
    assert_eq!(
        create("6212820138830214AA8609FF10FFFFFF11FF1AFF"),
        Ok(Command::CreateFile(NewFile {
            fid: 0x14AA,
            kind: NewFileKind::Df,
            acl: Acl { read: always, update: pin(0x10), create: pin(0x1A), delete: pin(0x11) },
        }))
    );
    // Refusals: no FID, a reserved FID, no size for an EF, another descriptor, an unknown
    // tag, access bytes that are not 9.
    for bad in [
        "620780020010820101",
        "620B8002001082010183023F00",
        "620B800200108201018302FFFF",
        "620B800200108201018302 3FFF",
        "6207820101830210AA",
        "620B800200108201028302 10AA",
        "6204830210AA",
        "620E800200108201018302 10AA 880100",
        "620F800200108201018302 10AA 8602 0000",
    ] {
        assert_eq!(create(&bad.replace(' ', "")), Err(Sw::WrongData), "{bad}");
    }
}

// cns.rs `is_idemia_2021` → `true`, `&&` → `||` (both): the IDEMIA 2021 rule needs IC 05,
// mask 05 and firmware 20 or later, all three.
#[test]
fn the_idemia_2021_rule_needs_ic_05_mask_05_and_firmware_20_or_later() {
    use firmalab_emulator::profile::cns::{ATR_CNS_1_1, is_idemia_2021};
    let atr = |ic: u8, mask: u8, fw: u8| {
        let mut a = ATR_CNS_1_1;
        (a[11], a[12], a[13]) = (ic, mask, fw);
        a
    };
    assert!(is_idemia_2021(&atr(0x05, 0x05, 0x20)));
    assert!(is_idemia_2021(&atr(0x05, 0x05, 0x21)));
    assert!(!is_idemia_2021(&atr(0x05, 0x05, 0x1F)), "firmware before 20");
    assert!(!is_idemia_2021(&atr(0x05, 0x09, 0x20)), "STIncard mask");
    assert!(!is_idemia_2021(&atr(0x02, 0x05, 0x20)), "another IC");
    assert!(!is_idemia_2021(&ATR_CNS_1_1), "the Incard CNS");
    assert!(!is_idemia_2021(&[0x3B, 0x00]), "not a CNS ATR");
}

// cns.rs `Cns::default_atr` → an empty / one-byte slice (four mutants): the ATR a CNS
// presents when its image names none is the CNS 1.1 one (RSA-2048 in OpenSC 0.23), which
// `recognise` knows as a CNS.
#[test]
fn the_cns_default_atr_is_the_cns_1_1_atr_and_recognised_as_a_cns() {
    use firmalab_emulator::profile::{cns::ATR_CNS_1_1, recognise};
    let atr = ProfileKind::Cns.profile().default_atr();
    assert_eq!(atr, &ATR_CNS_1_1[..]);
    let r = recognise(atr);
    assert_eq!(r.profile, Some(ProfileKind::Cns));
    assert!(r.label.contains("Italian CNS 1.1") && r.label.contains("RSA-1024/2048"), "{}", r.label);
}

// cns.rs `Cns::serial` → `None` / `Some("")` / `Some("xyzzy")`, its `Transparent` arm
// deleted: the serial a host shows is EF_IDCarta (`3F00/1000/1003`), the 16 characters it
// reads there.
#[test]
fn the_cns_serial_is_the_content_of_ef_idcarta() {
    let mut s = Session::new("cns-renewable.json");
    s.expect("00A4080C0410001003", "9000");
    let idcarta = s.expect("00B0000000", "* 6282");
    assert_eq!(idcarta.len(), 16);
    let serial = ProfileKind::Cns.profile().serial(s.card.image());
    assert_eq!(serial.as_deref().map(str::as_bytes), Some(&idcarta[..]));
}

// cns.rs `recognise` and `cns_historical_bytes`: the itacns structural rule (TS 3B, T0 and
// TD1 with 15 historical bytes, TD2 31, the interface bytes each Y announces skipped,
// historical bytes 00 6B), the CNS version and mask in the label, the CIE shape.
#[test]
fn cns_atrs_are_recognised_by_the_itacns_structure_with_version_and_mask_in_the_label() {
    use firmalab_emulator::profile::cns::{ATR_CNS_1_0, ATR_CNS_1_1};
    let cns = ProfileKind::Cns.profile();
    let label = |atr: &[u8]| cns.recognise(atr).map(|r| (r.profile, r.label));
    let cns_label = |s: &str| Some((Some(ProfileKind::Cns), s.to_owned()));
    assert_eq!(label(&ATR_CNS_1_1), cns_label("Italian CNS 1.1 (mask STIncard; RSA-1024/2048; OpenSC itacns)"));
    assert_eq!(
        label(&ATR_CNS_1_0),
        cns_label("Italian CNS 1.0 (mask STIncard; RSA-1024 only in OpenSC 0.23; OpenSC itacns)")
    );
    let with = |edits: &[(usize, u8)]| {
        let mut a = ATR_CNS_1_1.to_vec();
        for &(i, b) in edits {
            a[i] = b;
        }
        a
    };
    assert_eq!(
        label(&with(&[(12, 0x05), (21, 0x12)])),
        cns_label("Italian CNS 1.2 (mask Oberthur/IDEMIA; RSA-1024/2048; OpenSC itacns)")
    );
    assert_eq!(label(&with(&[(12, 0x0D)])), cns_label("Italian CNS 1.1 (mask Gemalto; RSA-1024/2048; OpenSC itacns)"));
    assert_eq!(label(&with(&[(12, 0x0E)])), cns_label("Italian CNS 1.1 (mask unknown; RSA-1024/2048; OpenSC itacns)"));
    assert_eq!(label(&with(&[(12, 0x00)])), cns_label("Italian CNS 1.1 (mask ?; RSA-1024/2048; OpenSC itacns)"));
    // The free bytes of the CNS pattern (hist 7, 8, 12) may be anything.
    assert!(label(&with(&[(16, 0x77), (17, 0x88), (21, 0x21)])).is_some());
    // The CIE has the shape and another tail.
    let cie = with(&[(15, 0x02), (16, 0x49), (17, 0x54), (18, 0x49), (19, 0x44), (20, 0x20), (21, 0x20)]);
    assert_eq!(label(&cie), Some((None, "Italian CIE v2 (not emulated)".to_owned())));
    // Interface bytes: T0 DF (no TB1) and TD1 91 (TA2 present) shift the historical bytes.
    let mut no_tb1 = ATR_CNS_1_1.to_vec();
    no_tb1[1] = 0xDF;
    no_tb1.remove(3);
    assert_eq!(label(&no_tb1), cns_label("Italian CNS 1.1 (mask STIncard; RSA-1024/2048; OpenSC itacns)"));
    let mut ta2 = ATR_CNS_1_1.to_vec();
    ta2[5] = 0x91;
    ta2.insert(6, 0x11);
    assert_eq!(label(&ta2), cns_label("Italian CNS 1.1 (mask STIncard; RSA-1024/2048; OpenSC itacns)"));
    // Not the structure.
    for (why, atr) in [
        ("TS 3F", with(&[(0, 0x3F)])),
        ("T0 without TD1", with(&[(1, 0x7F)])),
        ("T0 with 14 historical bytes", with(&[(1, 0xFE)])),
        ("TD1 with TD2 absent", with(&[(5, 0x01)])),
        ("TD1 of protocol T=0", with(&[(5, 0x80)])),
        ("TD2 not 31", with(&[(6, 0x21)])),
        ("historical byte 0 not 00", with(&[(9, 0x80)])),
        ("historical byte 1 not 6B", with(&[(10, 0x6A)])),
        ("not CNS in the historical bytes", with(&[(18, 0x44)])),
        ("the CNS pattern's first byte", with(&[(15, 0x03)])),
        ("the CNS pattern's last byte", with(&[(23, 0x81)])),
        ("cut short", ATR_CNS_1_1[..23].to_vec()),
        ("TS alone", vec![0x3B]),
        ("empty", vec![]),
    ] {
        assert_eq!(label(&atr), None, "{why}");
    }
}

// cns.rs `ac_byte` → 0 / 1, `& 0x1F` → `|` / `^`, and `acl_bytes`: the access bytes (tag 86)
// of the FCP, what OpenSC's itacns reads to know which PIN guards a file: `00` always, `FF`
// never, else the PIN reference.
#[test]
fn cns_fcp_access_bytes_name_the_pin_that_guards_each_operation() {
    let mut s = Session::new("cns-renewable.json");
    // DF 1400: UPDATE, APPEND (create), DELETE, CREATE under PIN 1A.
    let df = s.expect("00A4080002140000", "62.. 9000");
    assert_eq!(df, h("6212820138830214008609001A1AFFFF1AFF1AFF"));
    // EF 1400/9010: READ always, UPDATE / WRITE under PIN 1A, the rest never.
    let ef = s.expect("00A40800041400901000", "62.. 9000");
    assert!(ef.ends_with(&h("830290108609001A1AFFFFFFFFFFFF")), "{}", firmalab_emulator::hex::encode(&ef));
    // EF 1000/1003: never updated.
    let ef = s.expect("00A40800041000100300", "62.. 9000");
    assert!(ef.ends_with(&h("83021003860900FFFFFFFFFFFFFFFF")), "{}", firmalab_emulator::hex::encode(&ef));
}

// cns.rs `encode_dati_personali` → `vec![]` / `vec![0]` (and `decode_dati_personali`): the
// EF_DatiPersonali bytes, 6 hex digits of the rest's length then each field as 2 hex digits
// of length and its value, the ninth field (residence) empty.
#[test]
fn cns_dati_personali_encode_each_field_with_its_hex_length_and_decode_back() {
    use firmalab_emulator::perso::Holder;
    use firmalab_emulator::profile::cns::{decode_dati_personali, encode_dati_personali};
    let holder = Holder {
        issuer_code: "ARUBA".into(),
        issue_date: "01012024".into(),
        expiry_date: "01012030".into(),
        last_name: "ROSSI".into(),
        first_name: "MARIO".into(),
        birth_date: "02031980".into(),
        sex: "M".into(),
        codice_fiscale: "RSSMRA80C02H501X".into(),
    };
    let bytes = encode_dati_personali(&holder);
    let body = "05ARUBA0801012024080101203005ROSSI05MARIO080203198001M0010RSSMRA80C02H501X";
    assert_eq!(String::from_utf8(bytes.clone()).unwrap(), format!("{:06X}{body}", body.len()));
    assert_eq!(decode_dati_personali(&bytes), Some(holder));
    assert_eq!(decode_dati_personali(b"00000"), None);
    assert_eq!(decode_dati_personali(b"00000905ARUBA"), None, "shorter than its length");
}

// cns.rs `personalize`, the serial rule (`!=` → `==`, `||` → `&&`, `!` deleted): a CNS
// serial (EF_IDCarta) is exactly 16 ASCII letters or digits; anything else is refused with
// a message naming it.
#[test]
fn cns_personalisation_takes_a_serial_of_16_ascii_alphanumerics_only() {
    use firmalab_emulator::fs::lookup;
    use firmalab_emulator::image::{History, LifeCycle};
    use firmalab_emulator::perso::{Holder, KeySet, ObjectInfo, Personalization};
    use firmalab_emulator::security::PinRole;
    let image_of = image;
    let perso = |serial: &str| Personalization {
        profile: ProfileKind::Cns,
        description: "mutants".into(),
        atr: None,
        serial: serial.into(),
        pin: "12345678".into(),
        puk: "87654321".into(),
        so_pin: "11223344".into(),
        pin_tries: 3,
        puk_tries: 10,
        holder: Holder::default(),
        auth: None,
        sign: None,
        life_cycle: LifeCycle::Admin,
        capacity: 32 * 1024,
        history: History { first_issuance: "2026-01-01".into(), renewal_count: 0 },
        p256: false,
    };
    let image = ProfileKind::Cns.profile().personalize(&perso("0123456789ABCDEF")).unwrap();
    // No key: a blank card, the holder PINs at the default; no personal data.
    let user_pins = |image: &firmalab_emulator::CardImage| -> Vec<String> {
        image.pins.iter().filter(|p| p.role == PinRole::User).map(|p| p.value.clone()).collect()
    };
    assert!(user_pins(&image).iter().all(|v| v == "12345"), "{:?}", user_pins(&image));
    assert!(lookup(&image.mf, &[0x3F00, 0x1100, 0x1102]).is_none());
    // One key set (authentication only, then signature only): issued, the holder's PINs and
    // EF_DatiPersonali (cns.rs 486 `||` → `&&`, 535 `&&` → `||`).
    let fixture = image_of("cns-renewable.json");
    let key = fixture.keys.iter().find_map(|k| k.material.clone()).unwrap();
    let set = KeySet {
        info: ObjectInfo {
            label: "k".into(),
            id: vec![1],
            subject: vec![],
            issuer: vec![],
            modulus: vec![],
            exponent: vec![],
        },
        algorithm: Algorithm::Rsa2048,
        material: key,
        certificate: vec![0x30, 0x00],
    };
    for (auth, sign) in [(Some(set.clone()), None), (None, Some(set.clone()))] {
        let issued = ProfileKind::Cns
            .profile()
            .personalize(&Personalization { auth, sign, ..perso("0123456789ABCDEF") })
            .unwrap();
        assert!(user_pins(&issued).iter().all(|v| v == "12345678"), "{:?}", user_pins(&issued));
        assert!(lookup(&issued.mf, &[0x3F00, 0x1100, 0x1102]).is_some(), "EF_DatiPersonali");
    }
    assert_eq!(ProfileKind::Cns.profile().serial(&image).as_deref(), Some("0123456789ABCDEF"));
    for bad in ["0123456789ABCDE", "0123456789ABCDEF0", "0123456789ABCDE-", "0123456789ABCDÈ"] {
        let err = ProfileKind::Cns.profile().personalize(&perso(bad)).unwrap_err();
        assert!(err.contains("a CNS serial is 16 ASCII characters"), "{bad}: {err}");
    }
}

// ---- profile/oberthur.rs ----

const OBERTHUR: &str = "oberthur-renewable.json";

/// The Oberthur profile's decoding of `cmd` (its own arms, then the ISO ones).
fn ober_own(cmd: &str) -> Result<Command<'static>, Sw> {
    let bytes: &'static [u8] = Box::leak(h(cmd).into_boxed_slice());
    let apdu = Apdu::parse(bytes).unwrap_or_else(|sw| panic!("{cmd}: not an APDU ({sw:?})"));
    ProfileKind::Oberthur.profile().parse(&apdu)
}

/// An AWP PIN value: ASCII padded with `FF` to 64 bytes, as hex.
fn awp(pin: &str) -> String {
    padded(pin, 64, 0xFF)
}

/// A session on the Oberthur fixture inside the AWP DF `5011`.
fn awp_session(card: firmalab_emulator::Card) -> Session {
    let mut s = Session::with(card);
    s.expect("00A40000025011", "62.. 9000");
    s
}

// oberthur.rs `Own::execute`, LIST FILES `take(le / 2)` → `le * 2` (and `% 2`): the card
// lists at most Le / 2 FIDs, two bytes each, so an answer never exceeds the Le the host
// asked for.
#[test]
fn oberthur_list_files_returns_at_most_le_over_2_fids_of_the_current_df() {
    let mut s = awp_session(card(OBERTHUR));
    s.expect("00A40000029001", "62.. 9000");
    s.expect("8034000004", "10012001 9000");
    s.expect("8034000005", "10012001 9000");
    s.expect("8034000002", "1001 9000");
    s.expect("8034000001", "9000");
    s.expect("8034000000", "100120012101100220022102 9000");
}

// oberthur.rs `Oberthur::default_atr` → an empty / one-byte slice (three mutants): the ATR
// an Oberthur presents when its image names none is the recommended AuthentIC v4 one of
// spec/cards.md §2.1 (T=0), which `recognise` knows as an Oberthur.
#[test]
fn the_oberthur_default_atr_is_the_authentic_v4_t0_atr_and_recognised_as_an_oberthur() {
    use firmalab_emulator::profile::{oberthur::ATR, recognise};
    let atr = ProfileKind::Oberthur.profile().default_atr();
    assert_eq!(atr, &h("3B7D180000003180718E6477E30200829000")[..]);
    assert_eq!(atr, &ATR[..]);
    assert_eq!(recognise(atr).profile, Some(ProfileKind::Oberthur));
}

// oberthur.rs `Oberthur::serial` → `None` / `Some("")` / `Some("xyzzy")`: the serial a host
// shows is the lowercase hex of the 4 IC-serial bytes of the CPLC, response bytes 15..18 of
// GET DATA `80 CA 9F 7F` (spec/cards.md §2.2).
#[test]
fn the_oberthur_serial_is_the_lowercase_hex_of_the_cplc_ic_serial() {
    let mut s = Session::new(OBERTHUR);
    let cplc = s.expect("80CA9F7F2D", "9F7F2A.. 9000");
    let serial = ProfileKind::Oberthur.profile().serial(s.card.image());
    assert_eq!(serial.as_deref(), Some(firmalab_emulator::hex::encode(&cplc[15..19]).to_lowercase().as_str()));
    assert_eq!(serial.as_deref(), Some("1a2b3c4d"));
}

// oberthur.rs `Oberthur::validate` → `Ok(())`: an Oberthur image without its 42 CPLC bytes
// (which GET DATA answers and OpenSC takes the serial from) is refused with the rule named.
#[test]
fn an_oberthur_image_without_42_cplc_bytes_is_refused() {
    let good = image(OBERTHUR);
    assert_eq!(good.validate(), Ok(()));
    for cplc in [None, Some(vec![0u8; 41]), Some(vec![0u8; 43])] {
        let mut bad = good.clone();
        bad.cplc = cplc.clone().map(firmalab_emulator::hex::Bytes);
        let err = bad.validate().unwrap_err();
        assert!(err.contains("42 cplc bytes"), "{cplc:?}: {err}");
    }
}

// oberthur.rs CREATE PIN arm, guard `value.len() == 64` → `true`: the PIN of a CREATE PIN
// is padded to the AWP's 64 bytes; a shorter or longer one is 6A80, even from the security
// officer, and the PIN keeps its value.
#[test]
fn oberthur_create_pin_takes_a_pin_padded_to_64_bytes_and_refuses_others_with_6a80() {
    assert_eq!(
        ober_own(&format!("00240101420340{}", awp("2468"))),
        Ok(Command::CreatePin {
            pin: PinRef { reference: 0x81, scope: PinScope::Anywhere },
            tries: 3,
            value: h(&awp("2468")).leak(),
        })
    );
    let mut s = awp_session(card(OBERTHUR));
    s.expect(&format!("0020000440{}", awp("11223344")), "9000");
    let short = format!("{}{}", "0340", &awp("2468")[..126]);
    s.expect(&format!("00240101{:02X}{short}", short.len() / 2), "6A80");
    let long = format!("0340{}FF", awp("2468"));
    s.expect(&format!("00240101{:02X}{long}", long.len() / 2), "6A80");
    s.expect("0024010106034031323334", "6A80");
    s.expect(&format!("0020008140{}", awp("2468")), "63C2");
    s.expect(&format!("0020008140{}", awp("12345678")), "9000");
}

// oberthur.rs CREATE PIN arm, `apdu.p2 | 0x80` → `^`: P2 names the PIN with bit 7 set
// whether the host masks it (OpenSC sends `ref & 7F`) or not: P2 81 redefines the user PIN
// 81, which VERIFY 81 then takes, and creates no PIN 01.
#[test]
fn oberthur_create_pin_names_the_pin_with_bit_7_set_whatever_p2_bit_7() {
    let user = PinRef { reference: 0x81, scope: PinScope::Anywhere };
    for p2 in ["01", "81"] {
        let cmd = format!("002401{p2}420340{}", awp("2468"));
        assert!(matches!(ober_own(&cmd), Ok(Command::CreatePin { pin, tries: 3, .. }) if pin == user), "P2 {p2}");
    }
    let mut s = awp_session(card(OBERTHUR));
    let pins = s.card.image().pins.len();
    s.expect(&format!("0020000440{}", awp("11223344")), "9000");
    s.expect(&format!("00240181420340{}", awp("2468")), "9000");
    assert_eq!(s.card.image().pins.len(), pins, "no new PIN object");
    s.expect("0020008100", "63C3");
    s.expect(&format!("0020008140{}", awp("2468")), "9000");
}

// oberthur.rs `Oberthur::new_pin`, the PUK rule `reference & 0x7F == 0x04` (`==` → `!=`,
// `&` → `|` / `^`): a PIN the SO creates as `04` (reference 84) is a PUK, and a blocked PUK
// stays blocked for good (spec/domain.md §1.3): redefining it is 6983; any other new PIN
// (82 here) is not, and the SO may redefine it once blocked.
#[test]
fn a_pin_84_the_so_creates_is_a_puk_that_stays_blocked_and_other_new_pins_are_not() {
    let mut img = image(OBERTHUR);
    img.pins.retain(|p| p.reference.0 != 0x84);
    let mut c = firmalab_emulator::Card::new(img, firmalab_emulator::CardRng::insecure_deterministic(7));
    c.power_on();
    let mut s = awp_session(c);
    s.expect(&format!("0020000440{}", awp("11223344")), "9000");
    s.expect("0020008400", "6A88");
    s.expect(&format!("00240104420240{}", awp("87654321")), "9000");
    s.expect(&format!("00240102420240{}", awp("2468")), "9000");
    for r in ["84", "82"] {
        s.expect(&format!("002000{r}40{}", awp("99999999")), "63C1");
        s.expect(&format!("002000{r}40{}", awp("99999999")), "63C0");
        s.expect(&format!("002000{r}00"), "6983");
    }
    s.expect(&format!("00240102420340{}", awp("1357")), "9000");
    s.expect(&format!("0020008240{}", awp("1357")), "9000");
    s.expect(&format!("00240104420340{}", awp("11112222")), "6983");
    s.expect(&format!("0020008440{}", awp("11112222")), "6983");
}

// oberthur.rs GENERATE KEY PAIR arm `[_, _, _, _, ..]` deleted: the card generates with
// exponent 65537 only, so a request naming an explicit exponent (OpenSC appends it when it
// is not 65537) is 6A80, while a data field shorter than the two FIDs is 6700.
#[test]
fn oberthur_generate_with_an_explicit_exponent_is_6a80_and_short_data_6700() {
    let files = Command::GenerateKeyPair(KeyGen::Files { public: 0x1002, private: 0x3002 });
    assert_eq!(ober_own("00460000041002300200"), Ok(files));
    assert_eq!(ober_own("0046000008100230020103010001"), Err(Sw::WrongData));
    assert_eq!(ober_own("00460000051002300203"), Err(Sw::WrongData));
    assert_eq!(ober_own("004600000310023000"), Err(Sw::WrongLength));
    assert_eq!(ober_own("00460100041002300200"), Err(Sw::WrongP1P2));
    let mut s = awp_session(card(OBERTHUR));
    s.expect(&format!("0020008140{}", awp("12345678")), "9000");
    s.expect("0046000008100230020103010001", "6A80");
    s.expect("004600000310023000", "6700");
}

/// CREATE FILE of an Oberthur RSA key EF (`14` private, `12` public) of 1024 bits with the
/// 8 access bytes `ac` (hex).
fn create_key_file(kind: u8, fid: u16, ac: &str) -> String {
    format!("00E00000 18 6216 8202{kind:02X}00 8302{fid:04X} 85020400 8608{ac}").replace(' ', "")
}

// oberthur.rs `Oberthur::key_file_object`: its `AccessCondition::Pin(r)` arm deleted, and
// `p.role == PinRole::User` → `!=` in the fallback. The key of a new private-key EF is
// guarded by the PIN its DECRYPT / SIGN access byte names (here the SO's, `24`): the SO PIN
// alone generates and signs with it; with an access byte that names no PIN (`00`), by the
// holder's PIN (81), which alone generates with it.
#[test]
fn a_new_oberthur_key_is_guarded_by_the_pin_its_file_names_else_by_the_holder_pin() {
    let mut s = awp_session(card(OBERTHUR));
    s.expect(&format!("0020008140{}", awp("12345678")), "9000");
    // 3003 / 1003 under the SO PIN; 3004 / 1004 with DECRYPT and SIGN open, UPDATE the holder's.
    s.expect("00A40000029002", "62.. 9000");
    s.expect(&create_key_file(0x14, 0x3003, "2424FF24FF24FFFF"), "9000");
    s.expect(&create_key_file(0x14, 0x3004, "2100FF00FF00FFFF"), "9000");
    s.expect("00A4030000", "62.. 9000");
    s.expect("00A40000029001", "62.. 9000");
    s.expect(&create_key_file(0x12, 0x1003, "240000FF00FF00FF"), "9000");
    s.expect(&create_key_file(0x12, 0x1004, "210000FF00FF00FF"), "9000");
    // The holder's PIN: generates 3004, not 3003.
    s.expect("00460000041003300300", "6982");
    s.expect("00460000041004300400", "#128 9000");
    // The SO PIN alone: generates and signs with 3003.
    s.expect("802E002100", "9000");
    s.expect(&format!("0020000440{}", awp("11223344")), "9000");
    s.expect("00460000041004300400", "6982");
    let modulus = s.expect("00460000041003300300", "#128 9000");
    s.expect("00A4030000", "62.. 9000");
    s.expect("00A40000029002", "62.. 9000");
    s.expect("00A40000023003", "62.. 9000");
    s.expect("002241B603800111", "9000");
    let (digest, di) = sha256_digest_info(b"firmato dal responsabile");
    let sig = s.expect(&format!("002A9E9A33{}", firmalab_emulator::hex::encode(&di)), "#128 9000");
    let public =
        rsa::RsaPublicKey::new(rsa::BoxedUint::from_be_slice_vartime(&modulus), rsa::BoxedUint::from(65537u32))
            .unwrap();
    public.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &digest, &sig).expect("verifies");
}

// oberthur.rs `parse_create`: each file-type arm (`38` DF, `01` transparent, `04` records)
// deleted, the `1024 | 2048` size guards of the key EFs → `true`, the record rule
// (`record_len == 0 || record_count == 0`: `==` → `!=`, `||` → `&&`), and `ac_of`'s arms
// (`22`, `24`, `25` deleted): the 24-byte FCP of spec/cards.md §2.5 decoded into the file
// the card creates, with the access bytes of §2.3 at the positions of each file type.
#[test]
fn oberthur_create_file_decodes_type_fid_size_and_the_access_bytes_of_each_file_type() {
    let create = |p2: u8, ty: &str, fid: &str, size: &str, ac: &str| {
        ober_own(&format!("00E000{p2:02X}186216 8202{ty} 8302{fid} 8502{size} 8608{ac}").replace(' ', ""))
    };
    let pin = |r| AccessCondition::Pin(Hex8(r));
    let (always, never) = (AccessCondition::Always, AccessCondition::Never);
    let file = |fid, kind, acl| Ok(Command::CreateFile(NewFile { fid, kind, acl }));
    // DF: CREATE [0] (also its UPDATE), LIST FILES [2] (its READ), DELETE [3].
    assert_eq!(
        create(0, "3800", "9003", "0000", "2400252122242424"),
        file(0x9003, NewFileKind::Df, Acl { create: pin(0x04), update: pin(0x04), read: pin(0x84), delete: pin(0x81) })
    );
    // Transparent EF: UPDATE [1], READ [2], ERASE [3].
    assert_eq!(
        create(0, "0101", "1005", "0024", "FF212200FFFFFFFF"),
        file(
            0x1005,
            NewFileKind::Transparent { size: 36 },
            Acl { update: pin(0x81), read: pin(0x82), delete: always, create: never }
        )
    );
    // Record EF: the record length in 85, the record count in P2; neither may be 0.
    assert_eq!(
        create(4, "0401", "3005", "008D", "0025002500000000"),
        file(
            0x3005,
            NewFileKind::Records { record_len: 141, max_records: 4 },
            Acl { update: pin(0x84), read: always, delete: pin(0x84), create: never }
        )
    );
    assert_eq!(create(0, "0401", "3005", "008D", "0021002100000000"), Err(Sw::WrongData), "no record count");
    assert_eq!(create(4, "0401", "3005", "0000", "0021002100000000"), Err(Sw::WrongData), "records of 0 bytes");
    assert_eq!(create(4, "0401", "3005", "0100", "0021002100000000"), Err(Sw::WrongData), "records over 255");
    // RSA private key: UPDATE [0], DECRYPT / SIGN [1]; public key: UPDATE [0], ENCRYPT [2].
    for bits in [1024u16, 2048] {
        let size = format!("{bits:04X}");
        assert_eq!(
            create(0, "1400", "3006", &size, "2422FF22FF22FFFF"),
            file(
                0x3006,
                NewFileKind::PrivateKey { bits },
                Acl { update: pin(0x04), read: pin(0x82), create: never, delete: never }
            )
        );
        assert_eq!(
            create(0, "1200", "1006", &size, "250000FF00FF00FF"),
            file(
                0x1006,
                NewFileKind::PublicKey { bits },
                Acl { update: pin(0x84), read: always, create: never, delete: never }
            )
        );
    }
    // Key sizes the card does not generate, an unknown type, the MF's FID, another length.
    for (ty, size) in [("1400", "0200"), ("1400", "0300"), ("1200", "0200"), ("1200", "0C00"), ("1100", "0080")] {
        assert_eq!(create(0, ty, "3007", size, "2121FF21FF21FFFF"), Err(Sw::WrongData), "{ty} {size}");
    }
    assert_eq!(create(0, "0101", "3F00", "0010", "0000000000000000"), Err(Sw::WrongData));
    assert_eq!(ober_own("00E00000176215820201018302100585020010860700000000000000"), Err(Sw::WrongLength));
    // An unknown access byte is "never".
    assert_eq!(
        create(0, "0101", "1008", "0010", "0023600000000000"),
        file(
            0x1008,
            NewFileKind::Transparent { size: 16 },
            Acl { update: never, read: never, delete: always, create: never }
        )
    );
}

// oberthur.rs `fcp`: the DF's free space `free / 1024` (`/` → `%`, `*`) and the record EF's
// `record_len / 7` (`/` → `%`): tag 85 of a DF is the free EEPROM in KiB (one byte), of a
// record EF the record length over 7 (`14` for the 141-byte container records, as observed
// on the card, spec/cards.md §2.3).
#[test]
fn oberthur_fcp_gives_a_dfs_free_kib_and_the_container_lists_record_size_over_7() {
    let mut s = Session::new(OBERTHUR);
    let kib = u8::try_from(s.card.image().eeprom_free() / 1024).unwrap();
    assert!(kib > 1, "the fixture has some KiB free");
    let df = s.expect("00A40000025011", "62.. 9000");
    assert_eq!(df, h(&format!("62158202380083025011 8501{kib:02X} 8608210000212121 21FF").replace(' ', "")));
    let records = s.expect("00A40000023000", "62.. 9000");
    assert_eq!(records, h("621882050401008D04830230008501148608212100 21FFFFFFFF".replace(' ', "").as_str()));
}

/// The `size` bytes of the selected transparent EF, read in chunks of 256 as OpenSC does.
fn read_ef(s: &mut Session, size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for off in (0..size).step_by(256) {
        let n = (size - off).min(256);
        out.extend(s.expect(&format!("00B0{off:04X}{:02X}", n as u8), &format!("#{n} 9000")));
    }
    out
}

// oberthur.rs `personalize` and the encoders it uses: `cplc`, `llv` → `()`, `cert_info`,
// `key_info`, `container_record` (→ `vec![]` / `vec![0]` / `vec![1]`), `list_entry` (→ `[0; 5]` /
// `[1; 5]`), `guid` (→ `""` / `"xyzzy"`), the FIDs `0x1000 | i` … `0x3100 | i` (`|` → `&`), and the
// key roles (`decipher: i == KEY_AUTH`, `always_authenticate: i == KEY_SIGN`, `==` → `!=`). A
// freshly personalised card answers, APDU by APDU, the AWP layout OpenSC binds (spec/cards.md
// §2.2, §2.4): the CPLC with its serial, the token info, one container per key pair with its
// braced GUID, the object lists, the certificates and their info blobs, the key info blobs,
// the public keys; the authentication key deciphers, the signature key signs once per VERIFY.
#[test]
fn a_personalised_oberthur_answers_the_awp_layout_opensc_binds_and_keys_in_their_roles() {
    use firmalab_emulator::hex::encode;
    use firmalab_emulator::image::{History, LifeCycle};
    use firmalab_emulator::perso::{Holder, KeySet, ObjectInfo, Personalization};
    use rsa::traits::PublicKeyParts;
    let fixture = image(OBERTHUR);
    let subject = h("300F310D300B06035504030C0447495541");
    let issuer = h("300D310B300906035504030C024341");
    let set = |i: u8, label: &str, cert: &[u8]| {
        let material = fixture.keys.iter().find(|k| k.reference.0 == i).unwrap().material.clone().unwrap();
        KeySet {
            info: ObjectInfo {
                label: label.into(),
                id: vec![0xA0 | i; 20],
                subject: subject.clone(),
                issuer: issuer.clone(),
                modulus: public_key(&fixture, i).n().to_be_bytes().to_vec(),
                exponent: vec![0x01, 0x00, 0x01],
            },
            algorithm: Algorithm::Rsa2048,
            material,
            certificate: cert.to_vec(),
        }
    };
    let (cert1, cert2) = (h("3003020101"), h("300402020102"));
    let perso = Personalization {
        profile: ProfileKind::Oberthur,
        description: "mutants".into(),
        atr: None,
        serial: "0A0B0C0D".into(),
        pin: "24682468".into(),
        puk: "13571357".into(),
        so_pin: "11223344".into(),
        pin_tries: 3,
        puk_tries: 10,
        holder: Holder { first_name: "Giulia".into(), last_name: "Bianchi".into(), ..Holder::default() },
        auth: Some(set(1, "authentication", &cert1)),
        sign: Some(set(2, "signature", &cert2)),
        life_cycle: LifeCycle::User,
        capacity: 64 * 1024,
        history: History { first_issuance: "2026-01-01".into(), renewal_count: 0 },
        p256: false,
    };
    let img = perso.build().unwrap();
    let mut c = firmalab_emulator::Card::new(img, firmalab_emulator::CardRng::insecure_deterministic(7));
    c.power_on();
    let mut s = Session::with(c);
    // CPLC: 42 bytes, the IC serial at CPLC offset 12 (response bytes 15..18).
    let cplc = s.expect("80CA9F7F2D", "9F7F2A.. 9000");
    assert_eq!((cplc.len(), &cplc[3..5], &cplc[15..19]), (45, &h("4090")[..], &h("0A0B0C0D")[..]));
    s.expect("00A40000025011", "62.. 9000");
    // Token info: the label padded with spaces to 32, then 00 00 and the flags 040D.
    s.expect("00A40000021000", "62.. 9000");
    s.expect("00B0000024", &format!("{}0000040D 9000", encode(format!("{:<32}", "Giulia Bianchi").as_bytes())));
    // Containers: public / private / certificate FIDs, six zeros, 26, the braced GUID.
    s.expect("00A40000023000", "62.. 9000");
    for i in [1u8, 2] {
        let guid = format!("{{0A0B0C0D-0000-4000-8000-{i:012X}}}");
        let mut record = h(&format!("10{i:02X}30{i:02X}20{i:02X}00000000000026"));
        record.extend_from_slice(guid.as_bytes());
        record.resize(141, 0);
        s.expect(&format!("00B20{i}048D"), &format!("{} 9000", encode(&record)));
    }
    // Object lists: FF ‖ FID ‖ size (certificate bytes, key bits), zeros after.
    s.expect("00A40000024000", "62.. 9000");
    s.expect("00B00000FA", &format!("FF20010005FF20020006{} 9000", "00".repeat(240)));
    s.expect("00A40000025000", "62.. 9000");
    s.expect("00B000007D", &format!("FF30010800FF30020800{} 9000", "00".repeat(115)));
    // Public objects: per key its public key, certificate and certificate info.
    let llv = |v: &[u8]| format!("{:04X}{}", v.len(), encode(v));
    s.expect("00A40000029001", "62.. 9000");
    s.expect("8034000000", "100120012101100220022102 9000");
    for (i, label, cert) in [(1u8, "authentication", &cert1), (2, "signature", &cert2)] {
        s.expect(&format!("00A4000002200{i}"), "62.. 9000");
        assert_eq!(read_ef(&mut s, cert.len()), *cert);
        s.expect(&format!("00A4000002210{i}"), "62.. 9000");
        let blob =
            format!("0001{}{}{}{}0000", llv(label.as_bytes()), llv(&[0xA0 | i; 20]), llv(&subject), llv(&issuer));
        assert_eq!(encode(&read_ef(&mut s, blob.len() / 2)), blob);
        s.expect(&format!("00A4000002100{i}"), "62.. 9000");
        s.expect("80B4010000", &format!("{} 9000", encode(&public_key(&fixture, i).n().to_be_bytes())));
    }
    // Private objects: per key its key EF (the holder's, never readable) and its info blob.
    s.expect("00A4030000", "62.. 9000");
    s.expect("00A40000029002", "62.. 9000");
    s.expect("8034000000", "3001310130023102 9000");
    for (i, flags, label) in [(1u8, "04B1", "authentication"), (2, "0021", "signature")] {
        s.expect(&format!("00A4000002300{i}"), "62.. 9000");
        s.expect("00B0000010", "6982");
        s.expect(&format!("00A4000002310{i}"), "62.. 9000");
        let blob = format!(
            "{flags}{}{}{}{}{}03010001",
            llv(label.as_bytes()),
            llv(&[0xA0 | i; 20]),
            "30".repeat(16),
            llv(&subject),
            encode(&public_key(&fixture, i).n().to_be_bytes())
        );
        assert_eq!(encode(&read_ef(&mut s, blob.len() / 2)), blob);
    }
    // The holder's PIN; the authentication key deciphers, the signature key does not.
    s.expect(&format!("0020008140{}", awp("24682468")), "9000");
    let mut rng = firmalab_emulator::CardRng::insecure_deterministic(3);
    let cryptogram = public_key(&fixture, 1).encrypt(&mut rng, rsa::Pkcs1v15Encrypt, b"busta").unwrap();
    for (i, want) in [(1u8, "6275737461 9000"), (2, "6985")] {
        s.expect(&format!("00A4000002300{i}"), "62.. 9000");
        s.expect("00B0000010", "6981");
        s.expect("002241B803800111", "9000");
        s.expect(&format!("102A808608{}", encode(&cryptogram[..8])), "9000");
        s.expect(&format!("002A8086F8{}", encode(&cryptogram[8..])), want);
    }
    // The authentication key signs on one VERIFY again and again; the signature key once.
    let (_, di) = sha256_digest_info(b"modulo");
    for (i, second) in [(1u8, "#256 9000"), (2, "6982")] {
        s.expect(&format!("0020008140{}", awp("24682468")), "9000");
        s.expect(&format!("00A4000002300{i}"), "62.. 9000");
        s.expect("002241B603800111", "9000");
        s.expect(&format!("002A9E9A33{}", encode(&di)), "#256 9000");
        s.expect(&format!("002A9E9A33{}", encode(&di)), second);
    }
}

// ---- profile/incrypto34.rs and profile/incrypto34/ ----

const INCRYPTO34: &str = "incrypto34-issued.json";

// incrypto34.rs `Incrypto34::name` → `""` / `"xyzzy"`: the name images, the command line
// (`--profile incrypto34`) and transcripts use, and the list an unknown name is told.
#[test]
fn the_incrypto34_profile_is_named_incrypto34_on_the_command_line_and_in_errors() {
    assert_eq!(ProfileKind::Incrypto34.name(), "incrypto34");
    assert_eq!("incrypto34".parse::<ProfileKind>(), Ok(ProfileKind::Incrypto34));
    let err = "incrypto".parse::<ProfileKind>().unwrap_err();
    assert!(err.contains("incrypto34"), "{err}");
    assert_eq!(image(INCRYPTO34).profile, ProfileKind::Incrypto34);
}

// incrypto34.rs `Incrypto34::default_atr` → an empty / one-byte slice (three mutants): the
// ATR an Incrypto34 presents when its image names none is the single "DSD" ATR of the
// driver's table (spec/cards.md §4.1), which `recognise` knows as an Incrypto34.
#[test]
fn the_incrypto34_default_atr_is_the_drivers_dsd_atr_and_recognised_as_an_incrypto34() {
    use firmalab_emulator::profile::{incrypto34::ATR, recognise};
    let atr = ProfileKind::Incrypto34.profile().default_atr();
    assert_eq!(atr, &h("3BFF1800FF8131FE55006B02090200010101445344103180 92".replace(' ', "").as_str())[..]);
    assert_eq!(atr, &ATR[..]);
    assert_eq!(&atr[18..21], b"DSD");
    assert_eq!(recognise(atr).profile, Some(ProfileKind::Incrypto34));
}

// incrypto34.rs `ac_byte`, guard `r <= 0x7F` → `true`: an access byte names a PIN by its
// reference 01..7F; a condition on a reference above 7F (which the driver would read as
// unknown) is shown as `FF`, never, which is also what the card enforces.
#[test]
fn an_incrypto34_fcp_shows_a_pin_reference_above_7f_as_never() {
    use firmalab_emulator::fs::lookup_mut;
    let mut img = image(INCRYPTO34);
    let token_info = lookup_mut(&mut img.mf, &[0x3F00, 0x5015, 0x5032]).unwrap();
    token_info.acl.read = AccessCondition::Pin(Hex8(0x83));
    token_info.acl.update = AccessCondition::Pin(Hex8(0x03));
    let mut c = firmalab_emulator::Card::new(img, firmalab_emulator::CardRng::insecure_deterministic(7));
    c.power_on();
    let mut s = Session::with(c);
    let fcp = s.expect("00A40800045015503200", "62.. 9000");
    assert!(fcp.ends_with(&h("8609FF0303FFFF00FFFFFF")), "{}", firmalab_emulator::hex::encode(&fcp));
    s.expect("00B0000000", "6982");
}

/// The subject Name (whole DER TLV) of a DER certificate: the sixth element of its
/// tbsCertificate when the `[0]` version is present, else the fifth.
fn certificate_subject(cert: &[u8]) -> Vec<u8> {
    use iso7816::tlv::take_data_object;
    let (_, cert_body, _) = take_data_object(cert).unwrap();
    let (_, mut tbs, _) = take_data_object(cert_body).unwrap();
    let mut fields = vec![];
    while !tbs.is_empty() {
        let (_, _, rest) = take_data_object(tbs).unwrap();
        fields.push(&tbs[..tbs.len() - rest.len()]);
        tbs = rest;
    }
    let skip = usize::from(fields[0][0] == 0xA0);
    fields[4 + skip].to_vec()
}

// pkcs15.rs `personalize` and its DER builders (`der`, `der_int`, `der_path`, `aodf_pin`,
// `padded`, `rsa_public_key`, `issued_key`: values replaced, arms deleted, arithmetic
// swapped), and incrypto34.rs `personalize`: personalising an Incrypto34 with the facts of
// the issued fixture (its keys, certificates, PINs, serial) gives that very card, byte for
// byte: EF.DIR, the ODF, TokenInfo, AODF, PrKDF, PuKDF, CDF, the public-key and certificate
// EFs OpenSC binds (tests/incrypto34.rs), the PIN and key objects and security environment.
#[test]
fn personalising_an_incrypto34_with_the_issued_fixtures_facts_gives_that_card_byte_for_byte() {
    let fixture = image(INCRYPTO34);
    let built = incrypto34_perso(&fixture).build().unwrap();
    assert_eq!(built.mf, fixture.mf, "the file system");
    assert_eq!(built.pins, fixture.pins, "the PIN objects");
    assert_eq!(built.keys, fixture.keys, "the key objects");
    assert_eq!(built.security_environments, fixture.security_environments);
    assert_eq!(built, fixture);
    assert_eq!(ProfileKind::Incrypto34.profile().serial(&built).as_deref(), Some("3410000000000106"));
}

/// The personalisation of the issued Incrypto34 fixture, from its own facts: its keys,
/// certificates (and their subjects), PINs, serial.
fn incrypto34_perso(fixture: &firmalab_emulator::CardImage) -> firmalab_emulator::perso::Personalization {
    use firmalab_emulator::fs::{FileBody, lookup};
    use firmalab_emulator::perso::{Holder, KeySet, ObjectInfo, Personalization};
    use rsa::traits::PublicKeyParts;
    use sha2::{Digest, Sha256};
    let set = |reference: u8| {
        let k = fixture.keys.iter().find(|k| k.reference.0 == reference).unwrap();
        let path: Vec<u16> = k.certificate.as_ref().unwrap().iter().map(|f| f.0).collect();
        let FileBody::Transparent { data } = &lookup(&fixture.mf, &path).unwrap().body else { panic!("certificate") };
        let public = public_key(fixture, reference);
        let modulus = public.n().to_be_bytes_trimmed_vartime().to_vec();
        Some(KeySet {
            info: ObjectInfo {
                label: k.label.clone(),
                id: Sha256::digest(&modulus)[..20].to_vec(),
                subject: certificate_subject(&data.0),
                issuer: vec![],
                modulus,
                exponent: public.e().to_be_bytes_trimmed_vartime().to_vec(),
            },
            algorithm: k.algorithm,
            material: k.material.clone().unwrap(),
            certificate: data.0.clone(),
        })
    };
    let pin = |r: u8| fixture.pins.iter().find(|p| p.reference.0 == r).unwrap();
    Personalization {
        profile: ProfileKind::Incrypto34,
        description: fixture.description.clone(),
        atr: None,
        serial: "3410000000000106".into(),
        pin: pin(0x03).value.clone(),
        puk: pin(0x04).value.clone(),
        so_pin: pin(0x01).value.clone(),
        pin_tries: pin(0x03).max_tries,
        puk_tries: pin(0x04).max_tries,
        holder: Holder::default(),
        auth: set(0x11),
        sign: set(0x10),
        life_cycle: fixture.life_cycle,
        capacity: fixture.capacity,
        history: fixture.history.clone(),
        p256: false,
    }
}

/// PUT DATA OCI of a 1024-bit key component as `incrypto34_store_key_component` builds it,
/// with the object class byte (`83` first byte) `class`.
fn incrypto34_oci_key(class: u8, key: u8) -> String {
    let body = format!(
        "8302{class:02X}{key:02X}850822008 80FFFFF0000860A0303FFFFFFFF00FFFFFF8B10{}8F8281 00{}",
        "FF".repeat(16),
        "FF".repeat(128)
    )
    .replace(' ', "");
    format!("00DA016E{:02X}{body}", body.len() / 2)
}

// objects.rs `put_oci`, guard `class & 0xF0 == CLASS_KEY` → `true`: an OCI object is a PIN
// (class `00`) or a key component (class `2n`, n the component); any other class is 6A80
// and creates nothing.
#[test]
fn incrypto34_put_data_oci_takes_key_components_of_class_2n_only() {
    let mut s = Session::new(INCRYPTO34);
    s.expect("00A4080C025015", "9000");
    let keys = s.card.image().keys.len();
    for class in [0x10, 0x30, 0x60, 0xA0] {
        s.expect(&incrypto34_oci_key(class, 0x12), "6A80");
    }
    assert_eq!(s.card.image().keys.len(), keys);
    s.expect(&incrypto34_oci_key(0x20, 0x12), "9000");
    assert_eq!(s.card.image().keys.len(), keys + 1);
}

/// PUT DATA OCI of a PIN as `incrypto34_store_pin` builds it: reference, 3 tries, minimum
/// length 4, no PUK, the value padded with `00` to 8.
fn incrypto34_oci_pin(reference: u8, value: &str) -> String {
    let r = format!("{reference:02X}");
    let body = format!("830200{r} 8508 0203 8703 FF0000 04 860A 00{r}FF FFFFFFFFFFFFFF 8F08{}", padded(value, 8, 0))
        .replace(' ', "");
    format!("00DA016E{:02X}{body}", body.len() / 2)
}

// objects.rs `put_pin`, `reference > 0x7F` → `>=`: a PIN object's reference is 01 to 7F
// (VERIFY names it `80 | ref`); 7F is the last one, 80 and above are 6A80.
#[test]
fn incrypto34_pin_objects_take_references_up_to_7f() {
    let mut s = Session::new(INCRYPTO34);
    s.expect("00A4080C025015", "9000");
    s.expect(&incrypto34_oci_pin(0x80, "2468"), "6A80");
    s.expect(&incrypto34_oci_pin(0x7F, "2468"), "9000");
    s.expect(&format!("002000FF08{}", padded("2468", 8, 0)), "9000");
}

// objects.rs `generate_key`, the room check `record_len < k + 4` with `k = bits / 8` (`/` →
// `%`, `<` → `==` / `<=`, `+` → `-`): the modulus record is tag, length, length − 1, `00`
// and the modulus, so a 1024-bit key needs records of 132 bytes: 131 is 6A84 and writes
// nothing, 132 takes the key.
#[test]
fn incrypto34_key_generation_needs_records_of_modulus_plus_4_bytes() {
    use firmalab_emulator::fs::{FileBody, FileNode, lookup_mut};
    let mut img = image(INCRYPTO34);
    let open = Acl {
        read: AccessCondition::Always,
        update: AccessCondition::Always,
        create: AccessCondition::Always,
        delete: AccessCondition::Always,
    };
    let app = lookup_mut(&mut img.mf, &[0x3F00, 0x5015]).unwrap().children_mut().unwrap();
    for (fid, record_len) in [(0x7E10, 131), (0x7E11, 132)] {
        app.push(FileNode::new(fid, None, open, FileBody::Records { record_len, max_records: 2, records: vec![] }));
    }
    let mut c = firmalab_emulator::Card::new(img, firmalab_emulator::CardRng::insecure_deterministic(7));
    c.power_on();
    let mut s = Session::with(c);
    s.expect("00A4080C025015", "9000");
    s.expect(&incrypto34_oci_key(0x20, 0x12), "9000");
    s.expect(&incrypto34_oci_key(0x21, 0x12), "9000");
    s.expect("004600120820127E1000100020", "6A84");
    s.expect("004600120820127E1100100020", "9000");
    s.expect("00A4080C0450157E10", "9000");
    s.expect("00B2010400", "6A83");
    s.expect("00A4080C0450157E11", "9000");
    let modulus = s.expect("00B2010400", "10828100.. 9000");
    assert_eq!(modulus.len(), 132);
}

// pkcs15.rs `personalize`: the serial rule (`!s.is_empty() && s.len() <= 16`: `!` deleted,
// `&&` → `||`, `<=` → `>`), the blank-card rule (`auth.is_none() && sign.is_none()`: `&&`
// → `||`), `issued_key`'s size rule (`b <= 1024` → `>`), and `der`'s long form (`n >> 8` →
// `<<`). A serial is 1 to 16 bytes of hex; a card with one key set is issued with that
// key alone; a 2048-bit key is refused; a PrKDF entry over 255 bytes (a long subject) is
// DER with a two-byte length, as OpenSC parses it.
#[test]
fn incrypto34_personalisation_rules_serial_one_key_key_size_and_long_der() {
    use firmalab_emulator::fs::{FileBody, lookup};
    use iso7816::tlv::take_data_object;
    let fixture = image(INCRYPTO34);
    let perso = incrypto34_perso(&fixture);
    for serial in ["34", &"AB".repeat(16)] {
        let p = firmalab_emulator::perso::Personalization { serial: serial.into(), ..perso.clone() };
        let built = p.build().unwrap();
        assert_eq!(ProfileKind::Incrypto34.profile().serial(&built), Some(serial.to_lowercase()));
    }
    for serial in ["", &"AB".repeat(17), "3G"] {
        let p = firmalab_emulator::perso::Personalization { serial: serial.into(), ..perso.clone() };
        let err = p.build().unwrap_err();
        assert!(err.contains("an incrypto34 serial is 2 to 32 hex digits"), "{serial:?}: {err}");
    }
    // The signature key alone: issued, one key object, its certificate at 3104.
    let one = firmalab_emulator::perso::Personalization { auth: None, ..perso.clone() }.build().unwrap();
    assert_eq!(one.keys.iter().map(|k| k.reference.0).collect::<Vec<_>>(), [0x10]);
    assert!(lookup(&one.mf, &[0x3F00, 0x5015, 0x3104]).is_some());
    assert!(lookup(&one.mf, &[0x3F00, 0x5015, 0x3105]).is_none());
    assert_eq!(one.pins.len(), 3);
    // A 2048-bit key does not fit the chip.
    let mut big = perso.clone();
    big.sign.as_mut().unwrap().algorithm = Algorithm::Rsa2048;
    let err = big.build().unwrap_err();
    assert!(err.contains("an incrypto34 holds RSA keys of 512 to 1024 bits"), "{err}");
    // A subject of 300 bytes: the PrKDF entry takes a 3-byte DER length and holds it whole.
    let mut long = perso.clone();
    let tlv = |tag: u8, v: &[u8]| [&[tag, 0x82][..], &(v.len() as u16).to_be_bytes(), v].concat();
    let attribute = tlv(0x30, &[&h("0603550403")[..], &tlv(0x0C, &[b'A'; 290])].concat());
    let subject = tlv(0x30, &tlv(0x31, &attribute));
    long.sign.as_mut().unwrap().info.subject = subject.clone();
    let built = long.build().unwrap();
    let FileBody::Transparent { data } = &lookup(&built.mf, &[0x3F00, 0x5015, 0x4402]).unwrap().body else {
        panic!("PrKDF")
    };
    assert_eq!(&data.0[..2], &[0x30, 0x82], "a long-form length");
    let (_, entry, _) = take_data_object(&data.0).unwrap();
    let entry_len = usize::from(u16::from_be_bytes([data.0[2], data.0[3]]));
    assert_eq!(entry.len(), entry_len);
    assert!(entry.windows(subject.len()).any(|w| w == subject), "the subject inside");
}
