//! Where the passphrase comes from: `--passphrase-file`, `VALISE_PASSPHRASE`, or a prompt on
//! the terminal. It is never echoed, logged or passed on the command line.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use zeroize::Zeroizing;

/// A passphrase held in memory, wiped when dropped.
pub type Secret = Zeroizing<String>;

/// The data folder: `--data-dir`, `VALISE_DATA_DIR`, or `~/.valise`.
pub fn data_dir(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = given {
        return Ok(dir.to_owned());
    }
    let home = std::env::var_os("HOME")
        .context("no --data-dir given, VALISE_DATA_DIR unset and HOME unknown; give --data-dir")?;
    Ok(PathBuf::from(home).join(".valise"))
}

/// The passphrase, if one is available without asking.
pub fn given(file: Option<&Path>) -> Result<Option<Secret>> {
    if let Some(file) = file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the passphrase file {}", file.display()))?;
        let line = text.lines().next().unwrap_or_default().to_owned();
        if line.is_empty() {
            bail!("the passphrase file {} is empty", file.display());
        }
        return Ok(Some(Zeroizing::new(line)));
    }
    if let Ok(value) = std::env::var("VALISE_PASSPHRASE")
        && !value.is_empty()
    {
        return Ok(Some(Zeroizing::new(value)));
    }
    Ok(None)
}

/// The passphrase: given, or asked for (twice when `creating`).
pub fn passphrase(file: Option<&Path>, creating: bool) -> Result<Secret> {
    if let Some(p) = given(file)? {
        if creating {
            valise_client::passphrase::check(&p)?;
        }
        return Ok(p);
    }
    if !std::io::stdin().is_terminal() {
        bail!("no passphrase: give --passphrase-file FILE or set VALISE_PASSPHRASE");
    }
    let first = Zeroizing::new(rpassword::prompt_password(if creating {
        "New passphrase for this device: "
    } else {
        "Passphrase: "
    })?);
    if creating {
        valise_client::passphrase::check(&first)?;
        let again = Zeroizing::new(rpassword::prompt_password("Again: ")?);
        if *again != *first {
            bail!("the two passphrases differ; nothing was changed");
        }
    }
    Ok(first)
}
