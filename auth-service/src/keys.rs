//! The Ed25519 keys that sign access tokens, and the JWKS that publishes
//! their public halves. The current key signs; earlier keys stay in the set
//! (verify only) while their tokens may still be alive.

use std::path::Path;
use std::time::Duration;

use agora_platform::tokens::{self, Claims, TokenError};
use anyhow::Context;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use uuid::Uuid;

struct Key {
    kid: String,
    public: Vec<u8>,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl Key {
    fn from_pem(pem_text: &str) -> anyhow::Result<Self> {
        let pem = pem::parse(pem_text).context("not a PEM file")?;
        anyhow::ensure!(pem.tag() == "PRIVATE KEY", "expected a PKCS#8 PRIVATE KEY, found {}", pem.tag());
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pem.contents())
            .map_err(|error| anyhow::anyhow!("not an Ed25519 PKCS#8 key: {error}"))?;
        let public = pair.public_key().as_ref().to_vec();
        let x = URL_SAFE_NO_PAD.encode(&public);
        // RFC 7638 thumbprint: the SHA-256 of the key's required members, in order.
        let thumbprint_input = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, thumbprint_input.as_bytes()));
        Ok(Key { kid, encoding: EncodingKey::from_ed_der(pem.contents()), decoding: DecodingKey::from_ed_der(&public), public })
    }
}

/// The signing key and the keys still accepted.
pub struct SigningKeys {
    keys: Vec<Key>,
}

impl SigningKeys {
    /// Loads the current key from `path` (generating and saving one if the
    /// file does not exist) and the earlier keys from `previous`.
    pub fn load(path: &Path, previous: &[impl AsRef<Path>]) -> anyhow::Result<Self> {
        if !path.exists() {
            generate_key_file(path)?;
            tracing::warn!(path = %path.display(), "generated a new token signing key");
        }
        let mut keys = vec![read_key(path)?];
        for file in previous {
            keys.push(read_key(file.as_ref())?);
        }
        Ok(SigningKeys { keys })
    }

    /// A set of one key, from PEM text.
    pub fn from_pem(pem_text: &str) -> anyhow::Result<Self> {
        Ok(SigningKeys { keys: vec![Key::from_pem(pem_text)?] })
    }

    /// A new token for the user, valid for `ttl`.
    pub fn issue(&self, user_id: Uuid, username: &str, ttl: Duration) -> anyhow::Result<String> {
        let key = &self.keys[0];
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user_id,
            username: username.to_owned(),
            iss: tokens::ISSUER.to_owned(),
            aud: tokens::AUDIENCE.to_owned(),
            iat: now,
            nbf: Some(now),
            exp: now + ttl.as_secs() as i64,
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, &claims, &key.encoding).context("cannot sign a token")
    }

    /// Verifies a token signed by any key of the set.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        let kid = header.kid.ok_or(TokenError::Invalid)?;
        let key = self.keys.iter().find(|key| key.kid == kid).ok_or(TokenError::UnknownKey)?;
        tokens::verify_with(token, &key.decoding)
    }

    /// The public keys as a JSON Web Key Set.
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<_> = self
            .keys
            .iter()
            .map(|key| {
                serde_json::json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": URL_SAFE_NO_PAD.encode(&key.public),
                    "kid": key.kid,
                    "alg": "EdDSA",
                    "use": "sig",
                })
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }
}

fn read_key(path: &Path) -> anyhow::Result<Key> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the signing key {}", path.display()))?;
    Key::from_pem(&text).with_context(|| format!("bad signing key {}", path.display()))
}

/// A new Ed25519 key as PKCS#8 PEM text.
pub fn generate_pem() -> anyhow::Result<String> {
    let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| anyhow::anyhow!("cannot generate a key"))?;
    Ok(pem::encode(&pem::Pem::new("PRIVATE KEY", document.as_ref())))
}

fn generate_key_file(path: &Path) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| format!("cannot create {}", path.display()))?;
    std::io::Write::write_all(&mut file, generate_pem()?.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_it_issues_verifies_with_its_own_claims() {
        let keys = SigningKeys::from_pem(&generate_pem().unwrap()).unwrap();
        let user = Uuid::now_v7();
        let claims = keys.verify(&keys.issue(user, "ada", Duration::from_secs(60)).unwrap()).unwrap();
        assert_eq!((claims.sub, claims.username.as_str()), (user, "ada"));
    }

    #[test]
    fn a_token_of_another_key_is_refused() {
        let ours = SigningKeys::from_pem(&generate_pem().unwrap()).unwrap();
        let theirs = SigningKeys::from_pem(&generate_pem().unwrap()).unwrap();
        let token = theirs.issue(Uuid::now_v7(), "eve", Duration::from_secs(60)).unwrap();
        assert_eq!(ours.verify(&token), Err(TokenError::UnknownKey));
    }

    #[test]
    fn the_jwks_publishes_every_key_with_its_id() {
        let keys = SigningKeys::from_pem(&generate_pem().unwrap()).unwrap();
        let jwks = keys.jwks();
        assert_eq!(jwks["keys"][0]["kid"], keys.keys[0].kid.as_str());
        assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
        let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks).unwrap();
        assert!(DecodingKey::from_jwk(&set.keys[0]).is_ok());
    }
}
