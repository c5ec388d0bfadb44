public import Foundation

/// A fresh folder for one test, removed when the value goes away.
public final class TempDir: @unchecked Sendable {
    public let path: String

    public init() {
        path = NSTemporaryDirectory() + "sluice-test-" + UUID().uuidString
        // A test cannot run without its scratch folder; failing loudly here is right.
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }  // best effort: the OS cleans /tmp too

    public func file(_ name: String) -> String { path + "/" + name }

    /// Writes `text` to `name` in the folder and returns the full path.
    @discardableResult
    public func write(_ name: String, _ text: String) -> String {
        _ = FileManager.default.createFile(atPath: file(name), contents: Data(text.utf8))
        return file(name)
    }
}

/// Deterministic pseudo-random numbers (SplitMix64) so failing random tests can be replayed.
public struct SplitMix: RandomNumberGenerator, Sendable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The reference libraries (pyarrow, fastavro) driven through `scripts/oracles/gen_oracles.py`:
/// files they write with the values they read, and their reading of files Sluice wrote.
public enum Oracle {
    /// The repository's root folder (found from this source file).
    public static let repoRoot: String = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        public init(description: String) { self.description = description }
    }

    /// Runs the oracle script with `args`; throws with its stderr when it fails (a missing
    /// pyarrow or fastavro is a failure, never a skip).
    public static func run(_ args: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", repoRoot + "/scripts/oracles/gen_oracles.py"] + args
        let errFile = NSTemporaryDirectory() + "sluice-oracle-err-" + UUID().uuidString
        FileManager.default.createFile(atPath: errFile, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: errFile) }
        p.standardError = FileHandle(forWritingAtPath: errFile)
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            let err = (try? String(contentsOfFile: errFile, encoding: .utf8)) ?? ""
            throw Failure(description: "oracle script failed (\(p.terminationStatus)): \(err.suffix(2000))")
        }
    }

    /// A folder of pyarrow- and fastavro-written files with `manifest.json`, made once per
    /// test process.
    public static let fixtures: Result<String, Failure> = {
        let dir = NSTemporaryDirectory() + "sluice-oracles-\(getpid())"
        do {
            try run([dir])
            return .success(dir)
        } catch let e as Failure {
            return .failure(e)
        } catch {
            return .failure(Failure(description: "\(error)"))
        }
    }()

    /// How pyarrow (`.parquet`) or fastavro (`.avro`) reads `file`: canonical JSON text.
    public static func dump(_ file: String) throws -> Data {
        let out = file + ".oracle.json"
        try run(["--dump", file, out])
        return try Data(contentsOf: URL(fileURLWithPath: out))
    }
}
