//! XMP: the Dublin Core, Photoshop and IPTC Extension properties `descriptive` reports, read
//! from the packet with quick-xml's pull parser.
//!
//! A packet is the file author's XML, so it is read as hostile: a document type declaration
//! (the only way to declare entities, and so to build an expansion bomb) stops the read, an
//! entity reference other than XML's five predefined ones is an error rather than a lookup,
//! and quick-xml never fetches or expands anything. Each property keeps at most
//! [`MAX_ITEMS`] items, so a packet costs at most its own size in text.

use super::{Found, MAX_KEYWORDS};
use quick_xml::NsReader;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{Namespace, ResolveResult};

const DC: &[u8] = b"http://purl.org/dc/elements/1.1/";
const PHOTOSHOP: &[u8] = b"http://ns.adobe.com/photoshop/1.0/";
const IPTC_EXT: &[u8] = b"http://iptc.org/std/Iptc4xmpExt/2008-02-29/";
const RDF: &[u8] = b"http://www.w3.org/1999/02/22-rdf-syntax-ns#";
/// Non-empty items of one array property kept: more than the keywords reported, so that a
/// longer list is known to have been cut, and enough that the creators kept, joined with
/// "; ", pass 256 characters whenever more were dropped.
const MAX_ITEMS: usize = 2 * MAX_KEYWORDS;

/// The properties read, by namespace and local name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Property {
    Title,
    Description,
    Subject,
    Creator,
    Rights,
    Credit,
    DigitalSourceType,
}

impl Property {
    fn of(namespace: &ResolveResult, local: &[u8]) -> Option<Self> {
        let ResolveResult::Bound(Namespace(namespace)) = namespace else {
            return None;
        };
        Some(match (*namespace, local) {
            (DC, b"title") => Self::Title,
            (DC, b"description") => Self::Description,
            (DC, b"subject") => Self::Subject,
            (DC, b"creator") => Self::Creator,
            (DC, b"rights") => Self::Rights,
            (PHOTOSHOP, b"Credit") => Self::Credit,
            (IPTC_EXT, b"DigitalSourceType") => Self::DigitalSourceType,
            _ => return None,
        })
    }
}

/// Why a packet was not read to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unread {
    /// It declares a document type (and so, possibly, entities).
    DocumentType,
    /// It is not well-formed XML, or refers to an undeclared entity.
    Malformed,
}

/// One property being read: its items (`rdf:li`) or its simple text.
struct Open {
    property: Property,
    depth: usize,
    items: Vec<(bool, String)>,
    item: Option<(bool, String)>,
    text: String,
    nested: bool,
}

/// Reads `packet`. What was read before a document type declaration or malformed XML is
/// kept (a property counts once its element has closed), and the reason is returned too.
pub(super) fn read(packet: &[u8]) -> (Found, Option<Unread>) {
    let mut found = Found::default();
    let mut reader = NsReader::from_reader(packet);
    let mut depth = 0usize;
    let mut open: Option<Open> = None;
    let unread = loop {
        let event = match reader.read_resolved_event() {
            Ok((namespace, event)) => {
                let property = match &event {
                    Event::Start(e) | Event::Empty(e) => {
                        Property::of(&namespace, e.local_name().as_ref())
                    }
                    _ => None,
                };
                (property, event)
            }
            Err(_) => break Some(Unread::Malformed),
        };
        match event {
            (_, Event::DocType(_)) => break Some(Unread::DocumentType),
            (_, Event::Eof) => break None,
            (property, Event::Start(e)) => {
                depth += 1;
                match open.as_mut() {
                    Some(o) => {
                        o.nested = true;
                        if is_rdf(&reader, &e, b"li") {
                            o.item = Some((is_default_language(&e), String::new()));
                        }
                    }
                    None => {
                        if let Some(property) = property {
                            open = Some(Open {
                                property,
                                depth,
                                items: Vec::new(),
                                item: None,
                                text: String::new(),
                                nested: false,
                            });
                        } else if read_attributes(&reader, &e, &mut found).is_err() {
                            break Some(Unread::Malformed);
                        }
                    }
                }
            }
            // Empty elements inside a property (`<rdf:li/>`) carry nothing to read.
            (property, Event::Empty(e)) if open.is_none() => {
                let resource = property.and_then(|p| Some((p, rdf_resource(&reader, &e)?)));
                if let Some((property, value)) = resource {
                    set(&mut found, property, vec![(false, value)]);
                } else if read_attributes(&reader, &e, &mut found).is_err() {
                    break Some(Unread::Malformed);
                }
            }
            (_, Event::Text(t)) => {
                if let Some(o) = open.as_mut() {
                    let Ok(text) = t.unescape() else {
                        break Some(Unread::Malformed);
                    };
                    match o.item.as_mut() {
                        Some((_, item)) => item.push_str(&text),
                        None => o.text.push_str(&text),
                    }
                }
            }
            (_, Event::CData(t)) => {
                if let Some(o) = open.as_mut() {
                    let text = String::from_utf8_lossy(&t);
                    match o.item.as_mut() {
                        Some((_, item)) => item.push_str(&text),
                        None => o.text.push_str(&text),
                    }
                }
            }
            (_, Event::End(_)) => {
                if let Some(mut o) = open.take() {
                    if depth == o.depth {
                        let items = if o.nested {
                            o.items
                        } else {
                            vec![(false, std::mem::take(&mut o.text))]
                        };
                        set(&mut found, o.property, items);
                    } else {
                        if let Some(item) = o.item.take()
                            && !item.1.is_empty()
                            && o.items.len() < MAX_ITEMS
                        {
                            o.items.push(item);
                        }
                        open = Some(o);
                    }
                }
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
    };
    (found, unread)
}

/// Whether `e` is `rdf:<local>`.
fn is_rdf(reader: &NsReader<&[u8]>, e: &BytesStart, local: &[u8]) -> bool {
    let (namespace, name) = reader.resolve_element(e.name());
    matches!(namespace, ResolveResult::Bound(Namespace(RDF))) && name.as_ref() == local
}

fn is_default_language(e: &BytesStart) -> bool {
    e.attributes()
        .flatten()
        .any(|a| a.key.as_ref() == b"xml:lang" && a.value.as_ref() == b"x-default")
}

/// A property written as `<ns:Prop rdf:resource="..."/>`.
fn rdf_resource(reader: &NsReader<&[u8]>, e: &BytesStart) -> Option<String> {
    e.attributes().flatten().find_map(|a| {
        let (namespace, name) = reader.resolve_attribute(a.key);
        let rdf = matches!(namespace, ResolveResult::Bound(Namespace(RDF)));
        (rdf && name.as_ref() == b"resource")
            .then(|| a.unescape_value().ok().map(|v| v.into_owned()))
            .flatten()
    })
}

/// Simple properties written as attributes of `rdf:Description` (XMP's short form).
fn read_attributes(
    reader: &NsReader<&[u8]>,
    e: &BytesStart,
    found: &mut Found,
) -> Result<(), quick_xml::Error> {
    for attribute in e.attributes() {
        let Ok(attribute) = attribute else {
            return Ok(());
        };
        let (namespace, name) = reader.resolve_attribute(attribute.key);
        if let Some(property) = Property::of(&namespace, name.as_ref()) {
            let value = attribute.unescape_value()?.into_owned();
            set(found, property, vec![(false, value)]);
        }
    }
    Ok(())
}

/// Stores a property's items the first time it is seen: a language alternative's
/// `x-default` item (else its first), a bag's items, a sequence's items joined with "; ".
fn set(found: &mut Found, property: Property, items: Vec<(bool, String)>) {
    let mut items: Vec<(bool, String)> = items.into_iter().filter(|(_, t)| !t.is_empty()).collect();
    let mut alternative = || {
        let at = items.iter().position(|(default, _)| *default).unwrap_or(0);
        (!items.is_empty()).then(|| items.swap_remove(at).1)
    };
    let slot = match property {
        Property::Subject => {
            if found.keywords.is_empty() {
                found.keywords = items.into_iter().map(|(_, t)| t).collect();
            }
            return;
        }
        Property::Creator => {
            if found.creator.is_none() && !items.is_empty() {
                let names: Vec<String> = items.into_iter().map(|(_, t)| t).collect();
                found.creator = Some(names.join("; "));
            }
            return;
        }
        Property::Title => &mut found.title,
        Property::Description => &mut found.description,
        Property::Rights => &mut found.copyright,
        Property::Credit => &mut found.credit,
        Property::DigitalSourceType => &mut found.digital_source_type,
    };
    if slot.is_none() {
        *slot = alternative();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACKET: &str = r#"<?xpacket begin='' id='W5M0MpCehiHzreSzNTczkc9d'?>
<x:xmpmeta xmlns:x='adobe:ns:meta/'>
<rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>
 <rdf:Description rdf:about='' xmlns:dc='http://purl.org/dc/elements/1.1/'
   xmlns:photoshop='http://ns.adobe.com/photoshop/1.0/' photoshop:Credit='Agency &amp; Co'>
  <dc:title><rdf:Alt><rdf:li xml:lang='fr'>Titre</rdf:li>
   <rdf:li xml:lang='x-default'>Title</rdf:li></rdf:Alt></dc:title>
  <dc:subject><rdf:Bag><rdf:li>sea</rdf:li><rdf:li>sky</rdf:li></rdf:Bag></dc:subject>
  <dc:creator><rdf:Seq><rdf:li>Ann</rdf:li><rdf:li>Bob</rdf:li></rdf:Seq></dc:creator>
 </rdf:Description>
 <rdf:Description rdf:about='' xmlns:Iptc4xmpExt='http://iptc.org/std/Iptc4xmpExt/2008-02-29/'>
  <Iptc4xmpExt:DigitalSourceType>http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia</Iptc4xmpExt:DigitalSourceType>
 </rdf:Description>
</rdf:RDF></x:xmpmeta><?xpacket end='w'?>"#;

    #[test]
    fn properties_are_read_in_their_long_and_short_forms() {
        let (found, unread) = read(PACKET.as_bytes());
        assert_eq!(unread, None);
        assert_eq!(found.title.as_deref(), Some("Title"));
        assert_eq!(found.keywords, ["sea", "sky"]);
        assert_eq!(found.creator.as_deref(), Some("Ann; Bob"));
        assert_eq!(found.credit.as_deref(), Some("Agency & Co"));
        assert_eq!(
            found.digital_source_type.as_deref(),
            Some("http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia")
        );
        assert_eq!(found.description, None);
    }

    #[test]
    fn a_document_type_declaration_stops_the_read_before_any_entity_is_expanded() {
        let mut bomb = String::from("<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>");
        for i in 1..10 {
            let previous = if i == 1 {
                "lol".to_owned()
            } else {
                format!("lol{}", i - 1)
            };
            bomb.push_str(&format!(
                "<!ENTITY lol{i} '{}'>",
                format!("&{previous};").repeat(10)
            ));
        }
        bomb.push_str("]>");
        bomb.push_str(&PACKET.replace("Title</rdf:li>", "&lol9;</rdf:li>"));
        let (found, unread) = read(bomb.as_bytes());
        assert_eq!(unread, Some(Unread::DocumentType));
        assert_eq!(found, Found::default());
    }

    #[test]
    fn an_undeclared_entity_is_an_error_not_a_lookup() {
        let packet = PACKET.replace("Titre", "&lol9;");
        let (found, unread) = read(packet.as_bytes());
        assert_eq!(unread, Some(Unread::Malformed));
        assert_eq!(found.title, None);
    }
}
