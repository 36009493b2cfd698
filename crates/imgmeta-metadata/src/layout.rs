//! How the file stores its pixels (`color_type`, `bit_depth`, `has_alpha`), as its headers
//! say, not as the decoder widened them for us.

use image::{ColorType, ExtendedColorType};

/// The channels of a stored pixel, or an index into a palette.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Channels {
    Grey,
    GreyAlpha,
    Rgb,
    Rgba,
    Cmyk,
    CmykAlpha,
    /// An index into a colour table (GIF, palette PNG, BMP or TIFF).
    Indexed,
}

impl Channels {
    fn prefix(self) -> &'static str {
        match self {
            Self::Grey => "l",
            Self::GreyAlpha => "la",
            Self::Rgb => "rgb",
            Self::Rgba => "rgba",
            Self::Cmyk => "cmyk",
            Self::CmykAlpha => "cmyka",
            Self::Indexed => "indexed",
        }
    }

    fn has_alpha_channel(self) -> bool {
        matches!(self, Self::GreyAlpha | Self::Rgba | Self::CmykAlpha)
    }
}

/// The stored pixel layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) channels: Channels,
    /// Bits per sample; for [`Channels::Indexed`], bits per palette index.
    pub(crate) bit_depth: u8,
    /// Floating-point samples (TIFF `SampleFormat` 3).
    pub(crate) float: bool,
    /// Whether a pixel can be less than opaque: an alpha channel, or transparency kept
    /// beside the pixels (a PNG `tRNS` chunk, a GIF transparent index, WebP's alpha flag).
    pub(crate) has_alpha: bool,
}

impl Layout {
    /// Integer samples; `has_alpha` when the channels include alpha.
    pub(crate) fn new(channels: Channels, bit_depth: u8) -> Self {
        Self {
            channels,
            bit_depth,
            float: false,
            has_alpha: channels.has_alpha_channel(),
        }
    }

    /// The same layout, non-opaque also when `transparency` is set.
    pub(crate) fn with_transparency(self, transparency: bool) -> Self {
        Self {
            has_alpha: self.has_alpha || transparency,
            ..self
        }
    }

    /// `color_type`: the channel letters and the bits per sample (`l1`, `rgb8`, `rgba16`,
    /// `cmyk8`), `f` after float ones (`rgb32f`), or `indexed`.
    pub(crate) fn color_type(&self) -> String {
        match self.channels {
            Channels::Indexed => "indexed".to_owned(),
            channels => format!(
                "{}{}{}",
                channels.prefix(),
                self.bit_depth,
                if self.float { "f" } else { "" }
            ),
        }
    }

    /// For formats whose headers we do not read (ICO, PNM, QOI, and damaged headers the
    /// decoder still accepted): what the decoder says the file holds, else what it decoded to.
    pub(crate) fn from_decoder(source: ExtendedColorType, decoded: ColorType) -> Self {
        use Channels::{Cmyk, Grey, GreyAlpha, Rgb, Rgba};
        let (channels, bit_depth) = match source {
            ExtendedColorType::L1 => (Grey, 1),
            ExtendedColorType::La1 => (GreyAlpha, 1),
            ExtendedColorType::Rgb1 => (Rgb, 1),
            ExtendedColorType::Rgba1 => (Rgba, 1),
            ExtendedColorType::L2 => (Grey, 2),
            ExtendedColorType::La2 => (GreyAlpha, 2),
            ExtendedColorType::Rgb2 => (Rgb, 2),
            ExtendedColorType::Rgba2 => (Rgba, 2),
            ExtendedColorType::L4 => (Grey, 4),
            ExtendedColorType::La4 => (GreyAlpha, 4),
            ExtendedColorType::Rgb4 => (Rgb, 4),
            ExtendedColorType::Rgba4 => (Rgba, 4),
            ExtendedColorType::L8 => (Grey, 8),
            ExtendedColorType::La8 => (GreyAlpha, 8),
            ExtendedColorType::Rgb8 | ExtendedColorType::Bgr8 => (Rgb, 8),
            ExtendedColorType::Rgba8 | ExtendedColorType::Bgra8 => (Rgba, 8),
            ExtendedColorType::L16 => (Grey, 16),
            ExtendedColorType::La16 => (GreyAlpha, 16),
            ExtendedColorType::Rgb16 => (Rgb, 16),
            ExtendedColorType::Rgba16 => (Rgba, 16),
            ExtendedColorType::Cmyk8 => (Cmyk, 8),
            ExtendedColorType::Cmyk16 => (Cmyk, 16),
            _ => return Self::decoded(decoded),
        };
        Self::new(channels, bit_depth)
    }

    /// The layout of decoded pixels.
    fn decoded(color: ColorType) -> Self {
        use Channels::{Grey, GreyAlpha, Rgb, Rgba};
        let (channels, bit_depth, float) = match color {
            ColorType::L8 => (Grey, 8, false),
            ColorType::La8 => (GreyAlpha, 8, false),
            ColorType::Rgb8 => (Rgb, 8, false),
            ColorType::L16 => (Grey, 16, false),
            ColorType::La16 => (GreyAlpha, 16, false),
            ColorType::Rgb16 => (Rgb, 16, false),
            ColorType::Rgba16 => (Rgba, 16, false),
            ColorType::Rgb32F => (Rgb, 32, true),
            ColorType::Rgba32F => (Rgba, 32, true),
            // Rgba8, and layouts added to `image` later: its widest common form.
            _ => (Rgba, 8, false),
        };
        Self {
            float,
            ..Self::new(channels, bit_depth)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_channels_then_bits_with_f_for_floats() {
        assert_eq!(Layout::new(Channels::Grey, 1).color_type(), "l1");
        assert_eq!(Layout::new(Channels::Rgba, 16).color_type(), "rgba16");
        assert_eq!(Layout::new(Channels::Cmyk, 8).color_type(), "cmyk8");
        assert_eq!(Layout::new(Channels::Indexed, 4).color_type(), "indexed");
        let float = Layout {
            float: true,
            ..Layout::new(Channels::Rgb, 32)
        };
        assert_eq!(float.color_type(), "rgb32f");
    }

    #[test]
    fn transparency_beside_the_pixels_counts_as_alpha() {
        let palette = Layout::new(Channels::Indexed, 8);
        assert!(!palette.has_alpha);
        assert!(palette.with_transparency(true).has_alpha);
        assert!(!palette.with_transparency(false).has_alpha);
        assert!(Layout::new(Channels::GreyAlpha, 8).has_alpha);
    }

    #[test]
    fn the_decoders_word_is_taken_before_the_decoded_layout() {
        let l1 = Layout::from_decoder(ExtendedColorType::L1, ColorType::L8);
        assert_eq!(
            (l1.color_type(), l1.bit_depth, l1.has_alpha),
            ("l1".into(), 1, false)
        );
        let bgra = Layout::from_decoder(ExtendedColorType::Bgra8, ColorType::Rgba8);
        assert_eq!((bgra.color_type(), bgra.has_alpha), ("rgba8".into(), true));
        let unknown = Layout::from_decoder(ExtendedColorType::Unknown(3), ColorType::Rgb32F);
        assert_eq!(unknown.color_type(), "rgb32f");
    }
}
