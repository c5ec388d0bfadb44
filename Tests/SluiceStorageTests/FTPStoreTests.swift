import Testing
import Foundation
import SluiceCore
import SluiceTesting
@testable import SluiceStorage

/// The FTP store against vsftpd (scripts/ftpserver.sh, started by scripts/test.sh).
@Suite(.serialized) struct FTPStoreTests {
    static func store() throws -> (FTPObjectStore, root: String) {
        let env = ProcessInfo.processInfo.environment
        guard let url = env["SLUICE_TEST_FTP_URL"], let root = env["SLUICE_TEST_FTP_ROOT"] else {
            throw Oracle.Failure(description: "SLUICE_TEST_FTP_URL is not set: run the tests with scripts/test.sh (it starts vsftpd)")
        }
        return (try FTPObjectStore(url: url), root)
    }

    /// A local read error used to end the upload as if the file were done, leaving a cut copy
    /// on the server and reporting success. Now it fails and the server keeps nothing.
    @Test func aLocalReadErrorFailsTheUploadAndLeavesNothing() async throws {
        let (ftp, root) = try Self.store()
        let unreadable = NSTemporaryDirectory() + "sluice-ftp-" + UUID().uuidString  // a folder: reading it fails (EISDIR)
        try FileManager.default.createDirectory(atPath: unreadable, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: unreadable) }
        let key = "upload-\(UUID().uuidString).csv"
        do {
            _ = try await ftp.upload(key, from: unreadable, contentType: nil)
            Issue.record("the upload of an unreadable file succeeded")
        } catch {
            #expect(error.description.contains("read failed") && error.description.contains(unreadable), "\(error)")
        }
        #expect(!FileManager.default.fileExists(atPath: root + "/" + key))
        // A readable file still goes up whole.
        let good = NSTemporaryDirectory() + "sluice-ftp-" + UUID().uuidString + ".csv"
        let text = String(repeating: "id,v\n1,2\n", count: 20_000)
        try text.write(toFile: good, atomically: false, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: good) }
        _ = try await ftp.upload(key, from: good, contentType: nil)
        #expect(try String(contentsOfFile: root + "/" + key, encoding: .utf8) == text)
        try await ftp.delete(key)
    }
}
