//! ISO codes the events carry: countries (ISO 3166-1 alpha-2) and currencies (ISO 4217).

/// The 249 officially assigned ISO 3166-1 alpha-2 codes, sorted (the list has not changed
/// since 2011; user-assigned codes such as `XK` and reserved ones such as `UK` or `EU` are
/// not in it).
pub const COUNTRIES: [&str; 249] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

/// Checks an ISO 3166-1 alpha-2 country or territory code (`FR`): one of [`COUNTRIES`].
pub fn check_country(code: &str) -> Result<(), &'static str> {
    if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
        Err("must be an ISO 3166-1 alpha-2 code: two uppercase letters")
    } else if COUNTRIES.binary_search(&code).is_err() {
        Err("is not an assigned ISO 3166-1 alpha-2 code")
    } else {
        Ok(())
    }
}

/// Checks an ISO 4217 currency code (`EUR`): three uppercase ASCII letters.
///
/// Only the form is checked, not membership of the current list: ISO 4217 gains codes
/// (`ZWG` in 2024, `XCG` in 2025) faster than a platform is redeployed, and the payment
/// service that produced the amount is the authority on which currencies it accepts.
pub fn check_currency(code: &str) -> Result<(), &'static str> {
    if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err("must be an ISO 4217 currency code: three uppercase letters")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countries_are_sorted_unique_and_well_formed() {
        assert!(COUNTRIES.windows(2).all(|w| w[0] < w[1]));
        assert!(COUNTRIES.iter().all(|c| check_country(c).is_ok()));
        for bad in ["", "F", "fr", "FRA", "UK", "XK", "ZZ", "É1"] {
            assert!(check_country(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn currencies_are_three_uppercase_letters() {
        for good in ["EUR", "GBP", "JPY", "ZWG"] {
            assert!(check_currency(good).is_ok());
        }
        for bad in ["", "EU", "eur", "EURO", "E1R", "ÉUR"] {
            assert!(check_currency(bad).is_err(), "{bad}");
        }
    }
}
