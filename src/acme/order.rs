//! One ACME order (RFC 8555 section 7.4): the account, the order for the
//! names, a DNS-01 record per authorization set by the solver, seen in
//! DNS, validated by the CA, the certificate finalized with a key made
//! here, and every record presented removed again, whatever happened.

use std::time::Duration;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, CertificateIdentifier, ChallengeType,
    Identifier, NewAccount, NewOrder, Order, OrderStatus, Problem, RetryPolicy,
};
use log::{info, warn};

use super::propagation::wait_visible;
use super::solver::{Action, Solver};
use super::{files, Failure, KeyType, Settings};
use crate::observe::metrics::AcmeOrder;
use portal_core::identity::Identity;
use portal_core::renewal::challenge_fqdn;

/// Where an order failed: the label of
/// `portal_proxy_acme_orders_total{result}` (`observe::metrics::AcmeOrder`)
/// and the log's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The account could not be read, made or used.
    Account,
    /// The CA refused or failed the order, its validation or its
    /// finalization (its problem document is in the message).
    Ca,
    /// The solver did not set the record.
    Solver,
    /// The record was not visible in DNS in time.
    Propagation,
    /// The certificate could not be written.
    Write,
}

impl Stage {
    pub(crate) fn label(self) -> AcmeOrder {
        match self {
            Stage::Account => AcmeOrder::AccountError,
            Stage::Ca => AcmeOrder::CaError,
            Stage::Solver => AcmeOrder::SolverError,
            Stage::Propagation => AcmeOrder::PropagationTimeout,
            Stage::Write => AcmeOrder::WriteError,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Stage::Account => "the ACME account",
            Stage::Ca => "the CA",
            Stage::Solver => "the DNS-01 solver",
            Stage::Propagation => "the TXT record's propagation",
            Stage::Write => "writing the certificate",
        }
    }
}

/// A certificate chain (leaf first) and its key, as PEM.
pub(super) struct Issued {
    pub chain_pem: String,
    pub key_pem: String,
}

fn failure(stage: Stage, message: impl Into<String>) -> Failure {
    Failure {
        stage,
        message: message.into(),
    }
}

/// A CA error, with its RFC 7807 problem document when it sent one.
fn ca(what: &'static str) -> impl Fn(instant_acme::Error) -> Failure {
    move |e| failure(Stage::Ca, format!("{what}: {}", describe(&e)))
}

fn describe(e: &instant_acme::Error) -> String {
    match e {
        instant_acme::Error::Api(problem) => problem_document(problem),
        other => {
            use std::error::Error as _;
            match other.source() {
                Some(source) => format!("{other}: {source}"),
                None => other.to_string(),
            }
        }
    }
}

/// The CA's problem document, as JSON for the log.
fn problem_document(p: &Problem) -> String {
    let subproblems: Vec<_> = p
        .subproblems
        .iter()
        .map(|s| {
            serde_json::json!({
                "identifier": s.identifier.as_ref().map(|i| format!("{i:?}")),
                "type": s.r#type,
                "detail": s.detail,
            })
        })
        .collect();
    let mut doc = serde_json::json!({"type": p.r#type, "detail": p.detail, "status": p.status});
    if !subproblems.is_empty() {
        doc["subproblems"] = serde_json::Value::Array(subproblems);
    }
    format!("the CA's problem document {doc}")
}

/// How long the CA is given to validate, then to issue.
const CA_POLL: RetryPolicy = RetryPolicy::new()
    .initial_delay(Duration::from_millis(500))
    .backoff(1.5)
    .timeout(Duration::from_secs(120));

/// Obtains a certificate for `names` (the first is the subject); a
/// renewal names the certificate it `replaces` where the CA offers ARI.
pub(super) async fn obtain(
    settings: &Settings,
    names: &[String],
    identity: &Identity,
    replaces: Option<CertificateIdentifier<'static>>,
) -> Result<Issued, Failure> {
    let account = account(settings).await?;
    let identifiers: Vec<Identifier> = names.iter().cloned().map(Identifier::Dns).collect();
    let mut order = match replaces {
        None => account.new_order(&NewOrder::new(&identifiers)).await,
        Some(replaces) => {
            let id = replaces.to_string();
            match account
                .new_order(&NewOrder::new(&identifiers).replaces(replaces))
                .await
            {
                Ok(order) => Ok(order),
                // Already replaced, or a CA that refuses the field: an
                // order of its own.
                Err(e) => {
                    warn!(
                        "ACME: the CA refused an order replacing {id} ({}); ordering anew",
                        describe(&e)
                    );
                    account.new_order(&NewOrder::new(&identifiers)).await
                }
            }
        }
    }
    .map_err(ca("new order"))?;
    let records = challenges(&mut order).await?;
    let solver = Solver::new(&settings.solver, identity).map_err(|e| failure(Stage::Solver, e))?;
    let mut presented = Vec::new();
    let validated = validate(&mut order, &solver, &records, settings, &mut presented).await;
    // Always clean up what was presented, whatever happened since.
    for (fqdn, value) in &presented {
        if let Err(e) = solver.ask(Action::Cleanup, fqdn, value).await {
            warn!("ACME: the solver did not remove the TXT record {fqdn}: {e}");
        }
    }
    validated?;
    finalize(&mut order, names, settings.key_type).await
}

/// The credentials of `account_file`: `Ok(None)` when the file does not
/// exist yet; an error naming the file when it cannot be used (never
/// replaced: it may be an account the CA knows).
pub(super) fn read_account(settings: &Settings) -> Result<Option<AccountCredentials>, String> {
    let file = &settings.account_file;
    let bad = |e: String| format!("tls.acme.account_file: {}: {e}", file.display());
    let bytes = match std::fs::read(file) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(bad(format!("cannot read: {e}"))),
    };
    let json: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("not JSON: {e}")))?;
    if let Some(made_at) = json.get("directory").and_then(|d| d.as_str()) {
        if made_at != settings.directory {
            return Err(bad(format!(
                "an account of {made_at}, not of tls.acme.directory {}; point account_file at a new file for another CA",
                settings.directory
            )));
        }
    }
    serde_json::from_value(json)
        .map(Some)
        .map_err(|e| bad(format!("not an account's credentials: {e}")))
}

/// The account of `account_file` when the file exists (never made here).
pub(super) async fn existing_account(settings: &Settings) -> Result<Option<Account>, String> {
    let Some(credentials) = read_account(settings)? else {
        return Ok(None);
    };
    let http = super::client::acme_http(settings.directory_ca_file.as_deref())?;
    Account::builder_with_http(http)
        .from_credentials(credentials)
        .await
        .map(Some)
        .map_err(|e| describe(&e))
}

/// The account of `account_file`, or a new one written there.
async fn account(settings: &Settings) -> Result<Account, Failure> {
    if let Some(account) = existing_account(settings)
        .await
        .map_err(|e| failure(Stage::Account, e))?
    {
        return Ok(account);
    }
    let http = super::client::acme_http(settings.directory_ca_file.as_deref())
        .map_err(|e| failure(Stage::Account, e))?;
    let builder = Account::builder_with_http(http);
    let contact = settings.email.as_ref().map(|e| format!("mailto:{e}"));
    let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
    let (account, credentials) = builder
        .create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            settings.directory.clone(),
            None,
        )
        .await
        .map_err(|e| failure(Stage::Account, format!("new account: {}", describe(&e))))?;
    let json = serde_json::to_vec_pretty(&credentials)
        .map_err(|e| failure(Stage::Account, e.to_string()))?;
    files::write_atomically(&settings.account_file, &json, 0o600)
        .map_err(|e| failure(Stage::Account, e))?;
    info!(
        "ACME: account {} made at {}, its key written to {}",
        account.id(),
        settings.directory,
        settings.account_file.display()
    );
    Ok(account)
}

/// The `(fqdn, value)` TXT record each pending authorization asks for.
async fn challenges(order: &mut Order) -> Result<Vec<(String, String)>, Failure> {
    let mut records = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.map_err(ca("authorization"))?;
        match authz.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => {
                return Err(failure(
                    Stage::Ca,
                    format!("the authorization for {} is {other:?}", authz.identifier()),
                ))
            }
        }
        let identifier = authz.identifier().to_string();
        let challenge = authz.challenge(ChallengeType::Dns01).ok_or_else(|| {
            failure(
                Stage::Ca,
                format!("the CA offers no dns-01 challenge for {identifier}"),
            )
        })?;
        records.push((
            challenge_fqdn(&identifier),
            challenge.key_authorization().dns_value(),
        ));
    }
    Ok(records)
}

/// Presents every record, waits until DNS shows them, then has the CA
/// validate; `presented` collects what is to be cleaned up.
async fn validate(
    order: &mut Order,
    solver: &Solver<'_>,
    records: &[(String, String)],
    settings: &Settings,
    presented: &mut Vec<(String, String)>,
) -> Result<(), Failure> {
    for (fqdn, value) in records {
        solver
            .ask(Action::Present, fqdn, value)
            .await
            .map_err(|e| failure(Stage::Solver, e))?;
        presented.push((fqdn.clone(), value.clone()));
    }
    wait_visible(
        &settings.dns_resolvers,
        records,
        settings.propagation_timeout,
    )
    .await
    .map_err(|e| failure(Stage::Propagation, e))?;
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.map_err(ca("authorization"))?;
        if authz.status != AuthorizationStatus::Pending {
            continue;
        }
        if let Some(mut challenge) = authz.challenge(ChallengeType::Dns01) {
            challenge.set_ready().await.map_err(ca("challenge"))?;
        }
    }
    match order.poll_ready(&CA_POLL).await.map_err(ca("validation"))? {
        OrderStatus::Ready => Ok(()),
        status => Err(failure(
            Stage::Ca,
            format!(
                "the order is {status:?} after validation: {}",
                challenge_errors(order).await
            ),
        )),
    }
}

/// What the CA said of each failed challenge.
async fn challenge_errors(order: &mut Order) -> String {
    let mut errors = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(authz)) = authorizations.next().await {
        for c in &authz.challenges {
            if let Some(problem) = &c.error {
                errors.push(format!(
                    "{}: {}",
                    authz.identifier(),
                    problem_document(problem)
                ));
            }
        }
    }
    if errors.is_empty() {
        "no challenge error given".into()
    } else {
        errors.join("; ")
    }
}

/// Finalizes with a CSR for a key made here, and fetches the chain.
async fn finalize(
    order: &mut Order,
    names: &[String],
    key_type: KeyType,
) -> Result<Issued, Failure> {
    let alg = match key_type {
        KeyType::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        KeyType::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
    };
    let make = || -> Result<(rcgen::KeyPair, Vec<u8>), rcgen::Error> {
        let key = rcgen::KeyPair::generate_for(alg)?;
        let mut params = rcgen::CertificateParams::new(names.to_vec())?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        let csr = params.serialize_request(&key)?;
        Ok((key, csr.der().to_vec()))
    };
    let (key, csr) = make().map_err(|e| failure(Stage::Ca, format!("cannot make the CSR: {e}")))?;
    order.finalize_csr(&csr).await.map_err(ca("finalize"))?;
    let chain_pem = order
        .poll_certificate(&CA_POLL)
        .await
        .map_err(ca("certificate"))?;
    let key_pem = key.serialize_pem();
    // Never write what would not serve.
    let served =
        crate::tls::certificates::certified_key_from_pem(&chain_pem, &key_pem).map_err(|e| {
            failure(
                Stage::Ca,
                format!("the certificate issued does not load: {e}"),
            )
        })?;
    let sans = crate::tls::certificates::dns_names(&served);
    if !portal_core::renewal::covers(&sans, names) {
        return Err(failure(
            Stage::Ca,
            format!("the certificate issued names {sans:?}, not every one of {names:?}"),
        ));
    }
    Ok(Issued { chain_pem, key_pem })
}
