public import SluiceCore
public import Foundation
import Crypto
import _CryptoExtras
import Synchronization

/// How Sluice reaches Google's APIs: endpoints (emulators and tests replace them) and the
/// credentials, found the way Google's own libraries find them.
public struct GoogleConfig: Sendable, Equatable {
    /// Where credentials come from.
    public enum Credentials: Sendable, Equatable {
        /// A service-account key file (JSON): an RS256-signed JWT exchanged for a token.
        case serviceAccount(path: String)
        /// The metadata server of the machine (GCE, GKE, Cloud Run), at this host.
        case metadata(host: String)
        /// No token (emulators).
        case anonymous
    }

    /// `https://storage.googleapis.com`, or `STORAGE_EMULATOR_HOST`.
    public var storageEndpoint = "https://storage.googleapis.com"
    /// `https://www.googleapis.com` (Drive v3), or `SLUICE_GDRIVE_ENDPOINT`.
    public var driveEndpoint = "https://www.googleapis.com"
    public var credentials = Credentials.metadata(host: "metadata.google.internal")
    /// Attempts per request for transient answers (429, rate-limit 403s, 5xx, dropped connections).
    public var attempts = 8
    /// The longest single wait between attempts, in seconds.
    public var maxBackoff = 32.0
    /// Requests per second this process sends to Google (`SLUICE_GOOGLE_RATE`); nil: no limit
    /// of ours. A server installs a limit shared by every process (``GoogleAPI/installGate(_:)``).
    public var rate: Double?

    public init() {}

    /// `GOOGLE_APPLICATION_CREDENTIALS` (a key file), else the metadata server
    /// (`GCE_METADATA_HOST`); anonymous against an emulator (`STORAGE_EMULATOR_HOST`) with no key file.
    public static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) -> GoogleConfig {
        var c = GoogleConfig()
        func trimmed(_ s: String) -> String { s.hasSuffix("/") ? String(s.dropLast()) : s }
        if let e = env["STORAGE_EMULATOR_HOST"], !e.isEmpty { c.storageEndpoint = trimmed(e.hasPrefix("http") ? e : "http://" + e) }
        if let e = env["SLUICE_GDRIVE_ENDPOINT"], !e.isEmpty { c.driveEndpoint = trimmed(e) }
        if let r = env["SLUICE_GOOGLE_RATE"].flatMap(Double.init), r > 0, r.isFinite { c.rate = r }
        if let key = env["GOOGLE_APPLICATION_CREDENTIALS"], !key.isEmpty {
            c.credentials = .serviceAccount(path: key)
        } else if env["STORAGE_EMULATOR_HOST"]?.isEmpty == false && env["SLUICE_GDRIVE_ENDPOINT"] == nil {
            c.credentials = .anonymous
        } else {
            c.credentials = .metadata(host: env["GCE_METADATA_HOST"] ?? "metadata.google.internal")
        }
        return c
    }
}

/// The fields of a service-account key file Sluice uses.
public struct ServiceAccountKey: Sendable, Decodable {
    public var clientEmail: String
    public var privateKey: String
    public var privateKeyID: String?
    public var tokenURI: String

    enum CodingKeys: String, CodingKey {
        case clientEmail = "client_email", privateKey = "private_key", privateKeyID = "private_key_id", tokenURI = "token_uri"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        clientEmail = try c.decode(String.self, forKey: .clientEmail)
        privateKey = try c.decode(String.self, forKey: .privateKey)
        privateKeyID = try c.decodeIfPresent(String.self, forKey: .privateKeyID)
        tokenURI = try c.decodeIfPresent(String.self, forKey: .tokenURI) ?? "https://oauth2.googleapis.com/token"
    }

    public static func read(_ path: String) throws(SluiceError) -> ServiceAccountKey {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SluiceError(.invalidConfig, "cannot read the service-account key file (GOOGLE_APPLICATION_CREDENTIALS)", at: SourceLocation(file: path))
        }
        do { return try JSONDecoder().decode(ServiceAccountKey.self, from: data) } catch {
            throw SluiceError(.invalidConfig, "not a service-account key file (it needs client_email and private_key)", at: SourceLocation(file: path))
        }
    }
}

/// The JWT a service account signs to ask for an access token (RFC 7523, RS256).
public enum GoogleJWT {
    /// Storage read/write and Drive read-only: what Sluice's sources and raw layer need.
    public static let scopes = ["https://www.googleapis.com/auth/devstorage.read_write", "https://www.googleapis.com/auth/drive.readonly"]

    /// `header.claims.signature`, valid one hour from `now`.
    public static func assertion(key: ServiceAccountKey, scopes: [String] = scopes, now: Date) throws(SluiceError) -> String {
        let iat = Int64(now.timeIntervalSince1970)
        var header: [String: String] = ["alg": "RS256", "typ": "JWT"]
        if let kid = key.privateKeyID { header["kid"] = kid }
        let claims: [String: Any] = ["iss": key.clientEmail, "scope": scopes.joined(separator: " "), "aud": key.tokenURI, "iat": iat, "exp": iat + 3600]
        let signingInput: String
        do {
            let h = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
            let c = try JSONSerialization.data(withJSONObject: claims, options: [.sortedKeys])
            signingInput = base64url(Array(h)) + "." + base64url(Array(c))
        } catch {
            throw SluiceError(.invalidConfig, "cannot encode a JWT: \(error)")
        }
        do {
            let pk = try _RSA.Signing.PrivateKey(pemRepresentation: key.privateKey)
            let sig = try pk.signature(for: Array(signingInput.utf8), padding: .insecurePKCS1v1_5)
            return signingInput + "." + base64url(Array(sig.rawRepresentation))
        } catch {
            throw SluiceError(.invalidConfig, "the service-account key of \(key.clientEmail) cannot sign (private_key is not an RSA key of 2048 bits or more): \(error)")
        }
    }

    /// Base64url without padding (RFC 7515 §2).
    static func base64url(_ bytes: [UInt8]) -> String {
        String(Base64.encode(bytes).compactMap { $0 == "=" ? nil : $0 == "+" ? "-" : $0 == "/" ? "_" : $0 })
    }
}

/// An access token and when it stops working.
public struct GoogleToken: Sendable, Equatable {
    public var value: String
    public var expires: Date
}

/// Access tokens for one set of credentials, fetched when needed and kept until a minute
/// before they expire (or until an API refuses one). One per process and credentials, so
/// every store shares it.
public actor GoogleTokenSource {
    let credentials: GoogleConfig.Credentials
    var current: GoogleToken?
    /// The exchange under way: callers arriving meanwhile wait for it instead of starting their own.
    var pending: Task<Result<GoogleToken?, SluiceError>, Never>?

    init(credentials: GoogleConfig.Credentials) { self.credentials = credentials }

    static let registry = Mutex<[GoogleConfig.Credentials: GoogleTokenSource]>([:])

    /// The process's token source for `credentials`.
    public static func shared(_ credentials: GoogleConfig.Credentials) -> GoogleTokenSource {
        registry.withLock { all in
            if let s = all[credentials] { return s }
            let s = GoogleTokenSource(credentials: credentials)
            all[credentials] = s
            return s
        }
    }

    /// A token valid for at least another minute (nil: anonymous).
    public func token(now: Date = Date()) async throws(SluiceError) -> String? {
        if case .anonymous = credentials { return nil }
        if let t = current, t.expires.timeIntervalSince(now) > 60 { return t.value }
        let task: Task<Result<GoogleToken?, SluiceError>, Never>
        if let pending { task = pending } else {
            let credentials = credentials
            task = Task { do throws(SluiceError) { return .success(try await Self.exchange(credentials)) } catch { return .failure(error) } }
            pending = task
        }
        let result = await task.value
        if pending == task { pending = nil }
        let fresh = try result.get()
        current = fresh
        return fresh?.value
    }

    /// Forgets `token` after an API refused it (it expired early or was revoked).
    public func refused(_ token: String?) {
        if current?.value == token { current = nil }
    }

    /// Asks the token endpoint or the metadata server for a token.
    static func exchange(_ credentials: GoogleConfig.Credentials) async throws(SluiceError) -> GoogleToken? {
        let answer: GoogleHTTP.Answer
        switch credentials {
        case .anonymous:
            return nil
        case .serviceAccount(let path):
            let key = try ServiceAccountKey.read(path)
            let jwt = try GoogleJWT.assertion(key: key, now: Date())
            let form = "grant_type=" + GoogleAPI.encode("urn:ietf:params:oauth:grant-type:jwt-bearer") + "&assertion=" + GoogleAPI.encode(jwt)
            answer = try await GoogleHTTP.send("token exchange at \(key.tokenURI)", method: "POST", url: key.tokenURI,
                                               headers: [("Content-Type", "application/x-www-form-urlencoded")], body: Array(form.utf8))
        case .metadata(let host):
            let url = "http://\(host)/computeMetadata/v1/instance/service-accounts/default/token"
            do {
                answer = try await GoogleHTTP.send("metadata token from \(host)", method: "GET", url: url, headers: [("Metadata-Flavor", "Google")])
            } catch {
                throw SluiceError(error.code, error.message + " (no GOOGLE_APPLICATION_CREDENTIALS is set, and this machine's metadata server did not answer: set it to a service-account key file)")
            }
        }
        guard answer.status == 200 else {
            throw SluiceError(.refused, "Google refused the credentials (\(credentials.describe)): \(GoogleHTTP.describe(answer))")
        }
        struct Reply: Decodable { var access_token: String; var expires_in: Double? }
        guard let r = try? JSONDecoder().decode(Reply.self, from: Data(answer.body)) else {
            throw SluiceError(.unavailable, "the token answer of \(credentials.describe) has no access_token")
        }
        return GoogleToken(value: r.access_token, expires: Date().addingTimeInterval(r.expires_in ?? 3600))
    }
}

extension GoogleConfig.Credentials: Hashable {
    var describe: String {
        switch self {
        case .serviceAccount(let path): "service-account key \(path)"
        case .metadata(let host): "metadata server \(host)"
        case .anonymous: "anonymous"
        }
    }
}
