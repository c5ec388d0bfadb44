public import Foundation

/// scripts/receivers/google_fake.py: Google's token endpoint, metadata server, Cloud Storage
/// JSON API and Drive v3 on 127.0.0.1, verifying the RS256 JWT signed with a key made here.
public final class GoogleFake: @unchecked Sendable {
    public let dir: String
    public let keyFile: String
    private(set) var process = Process()
    public private(set) var port = 0

    public init(_ args: [String] = []) throws {
        dir = NSTemporaryDirectory() + "sluice-google-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        keyFile = dir + "/service-account.json"
        let pem = dir + "/key.pem"
        try Self.shell(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", pem])
        for _ in 0..<3 {
            port = Int.random(in: 45_000..<55_000)
            let key: [String: Any] = ["type": "service_account", "project_id": "sluice-test", "private_key_id": "k1",
                                      "private_key": try String(contentsOfFile: pem, encoding: .utf8),
                                      "client_email": "loader@sluice-test.iam.gserviceaccount.com", "token_uri": "http://127.0.0.1:\(port)/token"]
            try JSONSerialization.data(withJSONObject: key).write(to: URL(fileURLWithPath: keyFile))
            process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", "scripts/receivers/google_fake.py", "--port", String(port), "--key-file", keyFile] + args
            process.currentDirectoryURL = URL(fileURLWithPath: Oracle.repoRoot)
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle(forWritingAtPath: "/dev/null")
            try process.run()
            for _ in 0..<600 where process.isRunning {
                if (try? stats()) != nil { return }
                Thread.sleep(forTimeInterval: 0.05)
            }
            stop()
        }
        throw Oracle.Failure(description: "the Google fake did not start (fastapi, uvicorn and cryptography must be installed)")
    }

    @discardableResult
    public static func shell(_ args: [String], input: Data? = nil) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = args
        let out = Pipe(), inp = Pipe()
        let errFile = NSTemporaryDirectory() + "sluice-shell-" + UUID().uuidString
        FileManager.default.createFile(atPath: errFile, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: errFile) }
        p.standardOutput = out
        p.standardError = FileHandle(forWritingAtPath: errFile)
        if input != nil { p.standardInput = inp }
        try p.run()
        if let input { inp.fileHandleForWriting.write(input); try inp.fileHandleForWriting.close() }
        let o = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            let err = (try? String(contentsOfFile: errFile, encoding: .utf8)) ?? ""
            throw Oracle.Failure(description: "\(args.joined(separator: " ")) failed: \(err.suffix(2000))")
        }
        return String(decoding: o, as: UTF8.self)
    }

    /// A service-account key, the fake as Cloud Storage's and Drive's endpoint.
    public var env: [String: String] {
        ["GOOGLE_APPLICATION_CREDENTIALS": keyFile, "STORAGE_EMULATOR_HOST": "http://127.0.0.1:\(port)", "SLUICE_GDRIVE_ENDPOINT": "http://127.0.0.1:\(port)"]
    }

    /// No key file: tokens from the metadata server.
    public var metadataEnv: [String: String] {
        ["GOOGLE_APPLICATION_CREDENTIALS": "", "STORAGE_EMULATOR_HOST": "http://127.0.0.1:\(port)", "SLUICE_GDRIVE_ENDPOINT": "http://127.0.0.1:\(port)",
         "GCE_METADATA_HOST": "127.0.0.1:\(port)"]
    }

    @discardableResult
    public func post(_ path: String, _ body: Any) throws -> [String: Any] {
        let data = try JSONSerialization.data(withJSONObject: body)
        let out = try Self.shell(["curl", "-sf", "-X", "POST", "-H", "Content-Type: application/json", "--data-binary", "@-",
                                  "http://127.0.0.1:\(port)\(path)"], input: data)
        return (try? JSONSerialization.jsonObject(with: Data(out.utf8))) as? [String: Any] ?? [:]
    }

    public func get(_ path: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        return try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
    }

    public func stats() throws -> [String: Int] { try get("/_admin/stats").compactMapValues { $0 as? Int } }

    /// Drive files: `(name, content, createdTime)` in `folder`.
    public func driveFiles(_ files: [(String, String, String)], folder: String, mime: String = "text/csv") throws {
        try post("/_admin/drive/files", files.map { ["name": $0.0, "content": $0.1, "createdTime": $0.2, "parents": [folder], "mimeType": mime] })
    }

    public func stop() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit { try? FileManager.default.removeItem(atPath: dir) }
}
