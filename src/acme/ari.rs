//! ACME Renewal Information (RFC 9773): where the CA offers it, it says
//! when to renew each certificate (a window, earlier than usual when it
//! must revoke), and a renewal order names the certificate it replaces.
//! The window is asked again when the CA's `Retry-After` says, at most
//! every [`MIN_REFETCH`] and at least every [`MAX_REFETCH`].

use std::time::Duration;

use instant_acme::CertificateIdentifier;
use log::{info, warn};
use rand::Rng as _;
use rustls::pki_types::Der;

use super::Settings;

/// The shortest wait between two questions about one certificate.
const MIN_REFETCH: Duration = Duration::from_secs(60);
/// The longest (RFC 9773 suggests asking again at least daily).
const MAX_REFETCH: Duration = Duration::from_secs(86_400);

/// The identifier of a certificate for ARI: `<aki>.<serial>`, each
/// base64url without padding.
pub(super) fn identifier(aki: &[u8], serial: &[u8]) -> CertificateIdentifier<'static> {
    CertificateIdentifier::new(Der::from_slice(aki), Der::from_slice(serial)).into_owned()
}

/// What the CA last said of the certificate in the files.
#[derive(Debug, Clone)]
struct Answer {
    certificate: String,
    /// The point of the window drawn for it (Unix seconds).
    pick: i64,
    ask_again_at: i64,
}

/// The renewal time suggested by the CA, asked when due; `None` where the
/// CA offers no ARI, no account exists yet, or the question fails (the
/// third of the lifetime then decides).
#[derive(Debug, Default)]
pub(super) struct Ari {
    last: Option<Answer>,
    /// Until when nothing is asked (after an answer without ARI, or a
    /// failure), and for which certificate.
    quiet_until: Option<(String, i64)>,
}

impl Ari {
    /// The renewal time the CA suggests for `certificate` at `now`.
    pub(super) async fn pick(
        &mut self,
        settings: &Settings,
        certificate: &CertificateIdentifier<'_>,
        now: i64,
    ) -> Option<i64> {
        let id = certificate.to_string();
        if let Some(last) = &self.last {
            if last.certificate == id && now < last.ask_again_at {
                return Some(last.pick);
            }
        }
        if let Some((quiet_id, until)) = &self.quiet_until {
            if *quiet_id == id && now < *until {
                return None;
            }
        }
        let account = match super::order::existing_account(settings).await {
            Ok(Some(account)) => account,
            Ok(None) => return None,
            Err(e) => {
                warn!("ACME: renewal information not asked: {e}");
                self.quiet_until = Some((id, now + MIN_REFETCH.as_secs() as i64));
                return None;
            }
        };
        match account.renewal_info(certificate).await {
            Ok((answer, retry_after)) => {
                let (start, end) = (
                    answer.suggested_window.start.unix_timestamp(),
                    answer.suggested_window.end.unix_timestamp(),
                );
                let pick = portal_core::renewal::ari_time(start, end, rand::thread_rng().gen());
                let wait = retry_after.clamp(MIN_REFETCH, MAX_REFETCH).as_secs() as i64;
                info!("ACME: the CA suggests renewing {id} between {start} and {end} (Unix seconds): renewal at {pick}");
                self.last = Some(Answer {
                    certificate: id,
                    pick,
                    ask_again_at: now + wait,
                });
                Some(pick)
            }
            Err(instant_acme::Error::Unsupported(_)) => {
                self.quiet_until = Some((id, now + MAX_REFETCH.as_secs() as i64));
                None
            }
            Err(e) => {
                warn!("ACME: asking the CA's renewal information for {id} failed, renewing at a third of the lifetime: {e}");
                self.quiet_until = Some((id, now + MIN_REFETCH.as_secs() as i64));
                None
            }
        }
    }
}
