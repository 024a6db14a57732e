//! One person, one identity: every device of a user at a post carries the same name,
//! clearance, offices and nationality. A new device must match what the user's other devices
//! say, and a change is made deliberately, to all of them at once ([`updated`]), never by
//! enrolling a second device with other details. Pure: the caller passes the user's current
//! devices and signs what comes out.

use valise_crypto::directory::VerifiedDevice;
use valise_proto::v1::{Classification, DeviceRecord};

use crate::enrolment::Invitation;

/// What a user is: the details every one of their devices carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// Full name.
    pub display_name: String,
    /// Clearance.
    pub clearance: Classification,
    /// Office mailboxes, sorted.
    pub offices: Vec<String>,
    /// Not a national: NOFORN cables do not reach them.
    pub foreign_national: bool,
}

impl Person {
    /// The person an invitation describes.
    pub fn invited(invitation: &Invitation) -> Self {
        Person::new(
            &invitation.display_name,
            invitation.clearance,
            &invitation.offices,
            invitation.foreign_national,
        )
    }

    /// The person a device record describes.
    pub fn of(device: &VerifiedDevice) -> Self {
        Person::new(
            &device.display_name,
            device.clearance,
            &device.offices,
            device.foreign_national,
        )
    }

    fn new(name: &str, clearance: Classification, offices: &[String], foreign: bool) -> Self {
        let mut offices = offices.to_vec();
        offices.sort();
        offices.dedup();
        Person {
            display_name: name.to_owned(),
            clearance,
            offices,
            foreign_national: foreign,
        }
    }

    fn describe(&self) -> String {
        let offices = if self.offices.is_empty() {
            "no office".to_owned()
        } else {
            format!("offices {}", self.offices.join(", "))
        };
        let nationality = if self.foreign_national {
            ", foreign national"
        } else {
            ""
        };
        format!(
            "\"{}\", {}, {offices}{nationality}",
            self.display_name,
            self.clearance.cable_name()
        )
    }
}

/// A new device that would give a user a second identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{address} is already enrolled as {enrolled}; a new device must carry the same details, \
     not {asked}. Enrol it with the same name, clearance, offices and nationality, or change \
     them for all of the user's devices first with `valise-relay user update`"
)]
pub struct Conflict {
    /// The user's address.
    pub address: String,
    /// What the user's devices carry.
    pub enrolled: String,
    /// What the new device would carry.
    pub asked: String,
}

/// Checks that a device invited for `address` matches the user's active `devices`.
pub fn check_same_person(
    address: &str,
    devices: &[&VerifiedDevice],
    invitation: &Invitation,
) -> Result<(), Conflict> {
    let asked = Person::invited(invitation);
    match devices.first() {
        Some(device) if Person::of(device) != asked => Err(Conflict {
            address: address.to_owned(),
            enrolled: Person::of(device).describe(),
            asked: asked.describe(),
        }),
        _ => Ok(()),
    }
}

/// A deliberate change to a user: each field given replaces the current one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    /// A new full name.
    pub display_name: Option<String>,
    /// A new clearance.
    pub clearance: Option<Classification>,
    /// New offices (all of them; empty: none).
    pub offices: Option<Vec<String>>,
    /// A new nationality flag.
    pub foreign_national: Option<bool>,
}

impl Change {
    /// Whether the change changes nothing.
    pub fn is_empty(&self) -> bool {
        self == &Change::default()
    }

    /// What the change sets, for the audit trail: field names only, never a person's name.
    pub fn fields(&self) -> String {
        let mut fields = Vec::new();
        if self.display_name.is_some() {
            fields.push("name");
        }
        if let Some(c) = self.clearance {
            fields.push(match c {
                Classification::TopSecret => "clearance=TOP_SECRET",
                Classification::Secret => "clearance=SECRET",
                Classification::Confidential => "clearance=CONFIDENTIAL",
                _ => "clearance=UNCLASSIFIED",
            });
        }
        if self.offices.is_some() {
            fields.push("offices");
        }
        if self.foreign_national.is_some() {
            fields.push("nationality");
        }
        fields.join(",")
    }
}

/// The record of `device` with `change` applied, unsigned: the caller signs it with the post's
/// enrolment key. Receive keys and enrolment time are kept.
pub fn updated(device: &VerifiedDevice, record: &DeviceRecord, change: &Change) -> DeviceRecord {
    let mut offices = change
        .offices
        .clone()
        .unwrap_or_else(|| device.offices.clone());
    offices.sort();
    offices.dedup();
    DeviceRecord {
        display_name: change
            .display_name
            .clone()
            .unwrap_or_else(|| device.display_name.clone()),
        clearance: change.clearance.unwrap_or(device.clearance) as i32,
        offices,
        foreign_national: change.foreign_national.unwrap_or(device.foreign_national),
        signature: Vec::new(),
        ..record.clone()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use valise_crypto::identity::IdentityKeyPair;

    fn device(clearance: Classification, offices: &[&str]) -> VerifiedDevice {
        let key = IdentityKeyPair::from_seed(&[5; 32]).unwrap();
        VerifiedDevice {
            id: key.device_id(),
            user: "alice".into(),
            post: "paris".into(),
            display_name: "Alice Martin".into(),
            offices: offices.iter().map(|o| (*o).into()).collect(),
            clearance,
            identity: *key.public(),
            receive_keys: vec![],
            enrolled_at_ms: 1,
            foreign_national: false,
        }
    }

    fn invitation(name: &str, clearance: Classification, offices: &[&str]) -> Invitation {
        Invitation {
            user: "alice".into(),
            display_name: name.into(),
            clearance,
            offices: offices.iter().map(|o| (*o).into()).collect(),
            foreign_national: false,
        }
    }

    #[test]
    fn a_second_device_must_carry_the_same_person() {
        let existing = device(Classification::Secret, &["POL", "ECON"]);
        let same = invitation("Alice Martin", Classification::Secret, &["ECON", "POL"]);
        assert!(check_same_person("alice@paris", &[&existing], &same).is_ok());
        let other = invitation("A. Martin", Classification::TopSecret, &["CONS"]);
        let err = check_same_person("alice@paris", &[&existing], &other).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(
                "alice@paris is already enrolled as \"Alice Martin\", SECRET, offices ECON, POL"
            ) && text.contains("not \"A. Martin\", TOP SECRET, offices CONS")
                && text.contains("valise-relay user update"),
            "{text}"
        );
        // A first device sets who the user is.
        assert!(check_same_person("alice@paris", &[], &other).is_ok());
    }

    #[test]
    fn a_change_replaces_only_what_it_names_and_keeps_the_keys() {
        let existing = device(Classification::Secret, &["POL"]);
        let record = DeviceRecord {
            device_id: existing.id.as_bytes().to_vec(),
            user: "alice".into(),
            post: "paris".into(),
            display_name: "Alice Martin".into(),
            offices: vec!["POL".into()],
            clearance: Classification::Secret as i32,
            enrolled_at_ms: 7,
            signature: vec![1, 2, 3],
            ..Default::default()
        };
        let change = Change {
            clearance: Some(Classification::TopSecret),
            ..Change::default()
        };
        let new = updated(&existing, &record, &change);
        assert_eq!(new.clearance, Classification::TopSecret as i32);
        assert_eq!(new.offices, vec!["POL".to_owned()]);
        assert_eq!(new.display_name, "Alice Martin");
        assert_eq!(new.enrolled_at_ms, 7);
        assert!(new.signature.is_empty(), "to be signed again");
        assert_eq!(change.fields(), "clearance=TOP_SECRET");
        assert!(!change.is_empty() && Change::default().is_empty());
    }
}
