public import Foundation
import Crypto

/// AWS credentials: an access key pair and, for temporary credentials, a session token.
public struct AWSCredentials: Sendable, Equatable {
    public var accessKeyID: String
    public var secretAccessKey: String
    public var sessionToken: String?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }
}

/// AWS Signature Version 4 (pure: no I/O, the time is passed in). Checked against the
/// published SigV4 test-suite vectors and the S3 documentation's examples.
public struct SigV4Signer: Sendable {
    public var credentials: AWSCredentials
    public var region: String
    public var service: String

    public static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    public static let unsignedPayload = "UNSIGNED-PAYLOAD"

    public init(credentials: AWSCredentials, region: String, service: String) {
        self.credentials = credentials
        self.region = region
        self.service = service
    }

    /// `20150830T123600Z` and `20150830`.
    public static func stamps(_ date: Date) -> (amzDate: String, day: String) {
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = TimeZone(identifier: "UTC")!
        let c = cal.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        let day = String(format: "%04d%02d%02d", c.year!, c.month!, c.day!)
        return (day + String(format: "T%02d%02d%02dZ", c.hour!, c.minute!, c.second!), day)
    }

    /// RFC 3986 encoding as SigV4 wants it: unreserved characters stay, everything else is
    /// %XX (upper case); `/` stays only when `keepSlash` (paths).
    public static func encode(_ s: String, keepSlash: Bool) -> String {
        var out = ""
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            case UInt8(ascii: "/") where keepSlash:
                out.append("/")
            default:
                out += String(format: "%%%02X", b)
            }
        }
        return out
    }

    /// The canonical query string of (already decoded) name/value pairs.
    public static func canonicalQuery(_ query: [(String, String)]) -> String {
        let encoded: [(String, String)] = query.map { (encode($0.0, keepSlash: false), encode($0.1, keepSlash: false)) }
        let sorted = encoded.sorted { (a: (String, String), b: (String, String)) -> Bool in a.0 == b.0 ? a.1 < b.1 : a.0 < b.0 }
        return sorted.map { (p: (String, String)) -> String in p.0 + "=" + p.1 }.joined(separator: "&")
    }

    /// Lower-case names, trimmed values with inner runs of spaces collapsed, repeated names
    /// joined by commas, sorted by name.
    static func canonicalHeaders(_ headers: [(String, String)]) -> (text: String, signed: String) {
        var merged: [String: [String]] = [:]
        for (name, value) in headers {
            let collapsed = value.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
            merged[name.lowercased(), default: []].append(collapsed.trimmingCharacters(in: .whitespaces))
        }
        let names = merged.keys.sorted()
        return (names.map { "\($0):\(merged[$0]!.joined(separator: ","))\n" }.joined(), names.joined(separator: ";"))
    }

    /// The canonical request (task 1 of the signing process). `path` is already URI-encoded.
    public static func canonicalRequest(method: String, path: String, query: [(String, String)], headers: [(String, String)],
                                        payloadHash: String) -> (request: String, signedHeaders: String) {
        let (text, signed) = canonicalHeaders(headers)
        return ([method, path.isEmpty ? "/" : path, canonicalQuery(query), text, signed, payloadHash].joined(separator: "\n"), signed)
    }

    func scope(_ day: String) -> String { "\(day)/\(region)/\(service)/aws4_request" }

    func signature(canonicalRequest: String, amzDate: String, day: String) -> String {
        let hashed = Self.hex(SHA256.hash(data: Data(canonicalRequest.utf8)))
        let toSign = "AWS4-HMAC-SHA256\n\(amzDate)\n\(scope(day))\n\(hashed)"
        var key = SymmetricKey(data: Data("AWS4\(credentials.secretAccessKey)".utf8))
        for part in [day, region, service, "aws4_request"] {
            key = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Data(part.utf8), using: key)))
        }
        return Self.hex(HMAC<SHA256>.authenticationCode(for: Data(toSign.utf8), using: key))
    }

    /// The Authorization header for a request whose `headers` (including `host` and
    /// `x-amz-date`, and any `x-amz-*` to sign) are all signed.
    public func authorization(method: String, path: String, query: [(String, String)], headers: [(String, String)],
                              payloadHash: String, date: Date) -> String {
        let (amzDate, day) = Self.stamps(date)
        let (request, signed) = Self.canonicalRequest(method: method, path: path, query: query, headers: headers, payloadHash: payloadHash)
        let sig = signature(canonicalRequest: request, amzDate: amzDate, day: day)
        return "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope(day)), SignedHeaders=\(signed), Signature=\(sig)"
    }

    /// The query of a presigned URL (host the only signed header, payload unsigned),
    /// `X-Amz-Signature` last.
    public func presignedQuery(method: String, host: String, path: String, query: [(String, String)], expires: Int, date: Date) -> [(String, String)] {
        let (amzDate, day) = Self.stamps(date)
        var q = query + [("X-Amz-Algorithm", "AWS4-HMAC-SHA256"), ("X-Amz-Credential", "\(credentials.accessKeyID)/\(scope(day))"),
                         ("X-Amz-Date", amzDate), ("X-Amz-Expires", String(expires)), ("X-Amz-SignedHeaders", "host")]
        if let token = credentials.sessionToken { q.append(("X-Amz-Security-Token", token)) }
        let (request, _) = Self.canonicalRequest(method: method, path: path, query: q, headers: [("host", host)], payloadHash: Self.unsignedPayload)
        q.append(("X-Amz-Signature", signature(canonicalRequest: request, amzDate: amzDate, day: day)))
        return q
    }

    static func hex<D: Sequence>(_ d: D) -> String where D.Element == UInt8 {
        d.map { String(format: "%02x", $0) }.joined()
    }
}
