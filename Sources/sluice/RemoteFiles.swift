import Foundation
import SluiceConfig
import SluiceCore
import SluiceStorage
import SluiceWorker

/// Files named by URL on the command line (`s3://bucket/key`, `s3://bucket/prefix/`,
/// `https://host/file.csv`) fetched into a scratch folder, so the loader reads local files.
struct RemoteFiles {
    /// Local paths in the order given (local arguments pass through).
    var paths: [String] = []
    /// The scratch folder to remove afterwards, if anything was fetched.
    var scratch: String?

    static func isRemote(_ arg: String) -> Bool {
        arg.hasPrefix("s3://") || arg.hasPrefix("http://") || arg.hasPrefix("https://") || arg.hasPrefix("ftp://")
    }

    static func fetch(_ args: [String], config: SluiceConfig, log: (String) -> Void) async throws(SluiceError) -> RemoteFiles {
        var out = RemoteFiles()
        guard args.contains(where: isRemote) else {
            out.paths = args
            return out
        }
        let scratch = (config.stateDir as NSString).appendingPathComponent("downloads/\(UUID().uuidString)")
        out.scratch = scratch
        let s3 = S3Config.from(config.s3)
        for (i, arg) in args.enumerated() {
            guard isRemote(arg) else { out.paths.append(arg); continue }
            let location = try StorageLocation(arg)
            let store = try location.store(config: s3)
            // A prefix (ending in `/`) stands for every object under it, in key order.
            let keys: [ObjectInfo]
            if location.kind.isListable, location.key.isEmpty || location.key.hasSuffix("/") {
                keys = try await store.listAll(prefix: location.key).filter { !$0.key.hasSuffix("/") }
                if keys.isEmpty { throw SluiceError(.notFound, "no objects under \(arg)") }
            } else {
                guard let head = try await store.head(location.key) else { throw SluiceError(.notFound, "\(arg) does not exist") }
                keys = [head]
            }
            for (j, object) in keys.enumerated() {
                let path = "\(scratch)/\(i)-\(j)/\((object.key as NSString).lastPathComponent)"
                let (info, _) = try await store.download(object.key, to: path, ifMatch: object.etag.isEmpty ? nil : object.etag)
                log("fetched \(store.displayName)/\(object.key) (\(info.size) bytes)")
                out.paths.append(path)
            }
        }
        return out
    }

    func cleanUp() {
        if let scratch { try? FileManager.default.removeItem(atPath: scratch) }
    }
}
