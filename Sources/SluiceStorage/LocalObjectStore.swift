public import SluiceCore
public import Foundation
import Crypto

/// A local folder as an object store: keys are paths under `root`; the etag is the size
/// and modification time, so a rewritten file reads as a changed object.
public struct LocalObjectStore: ObjectStore {
    public let root: String
    public var displayName: String { root }

    public init(root: String) { self.root = root }

    func path(_ key: String) throws(SluiceError) -> String {
        let p = ((root as NSString).appendingPathComponent(key) as NSString).standardizingPath
        guard p == root || p.hasPrefix(root.hasSuffix("/") ? root : root + "/") else {
            throw SluiceError(.refused, "key '\(key)' leaves the folder \(root)")
        }
        return p
    }

    static func info(key: String, path: String) -> ObjectInfo? {
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        let nanos = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        return ObjectInfo(key: key, size: Int64(st.st_size), etag: "\(st.st_size)-\(nanos)",
                          lastModified: Date(timeIntervalSince1970: Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9))
    }

    public func list(prefix: String, continuation: String?, limit: Int) async throws(SluiceError) -> ObjectPage {
        var keys: [String] = []
        let base = URL(fileURLWithPath: root)
        if let e = FileManager.default.enumerator(at: base, includingPropertiesForKeys: [.isRegularFileKey], options: []) {
            let rootPath = base.standardizedFileURL.path
            for case let url as URL in e {
                let full = url.standardizedFileURL.path
                guard full.hasPrefix(rootPath + "/") else { continue }
                let key = String(full.dropFirst(rootPath.count + 1))
                if key.hasPrefix(prefix), continuation.map({ key > $0 }) ?? true { keys.append(key) }
            }
        }
        keys.sort()
        var objects: [ObjectInfo] = []
        for k in keys {
            if objects.count == limit { break }
            if let i = Self.info(key: k, path: try path(k)) { objects.append(i) }
        }
        let more = keys.count > objects.count && objects.count == limit
        return ObjectPage(objects: objects, continuation: more ? objects.last?.key : nil)
    }

    public func head(_ key: String) async throws(SluiceError) -> ObjectInfo? {
        Self.info(key: key, path: try path(key))
    }

    func changed(_ key: String, _ p: String, ifMatch: String?) throws(SluiceError) -> ObjectInfo {
        guard let info = Self.info(key: key, path: p) else { throw SluiceError(.notFound, "no such file", at: SourceLocation(file: p)) }
        if let ifMatch, info.etag != ifMatch {
            throw SluiceError(.aborted, "changed since it was listed (etag \(ifMatch), now \(info.etag))", at: SourceLocation(file: p))
        }
        return info
    }

    public func get(_ key: String, range: Range<Int64>?, ifMatch: String?) async throws(SluiceError) -> [UInt8] {
        let p = try path(key)
        let info = try changed(key, p, ifMatch: ifMatch)
        guard let h = FileHandle(forReadingAtPath: p) else { throw SluiceError(.notFound, "cannot open", at: SourceLocation(file: p)) }
        defer { try? h.close() }
        let r = range ?? 0..<info.size
        do {
            try h.seek(toOffset: UInt64(r.lowerBound))
            return [UInt8](try h.read(upToCount: Int(r.upperBound - r.lowerBound)) ?? Data())
        } catch {
            throw SluiceError(.io, "read failed: \(error.localizedDescription)", at: SourceLocation(file: p))
        }
    }

    public func download(_ key: String, to target: String, ifMatch: String?, hashing: Bool) async throws(SluiceError) -> (info: ObjectInfo, sha256: String?) {
        let p = try path(key)
        let before = try changed(key, p, ifMatch: ifMatch)
        guard let h = FileHandle(forReadingAtPath: p) else { throw SluiceError(.notFound, "cannot open", at: SourceLocation(file: p)) }
        defer { try? h.close() }
        let out = try Download.openFile(target)
        defer { try? out.close() }  // synchronized explicitly below
        var hasher = hashing ? SHA256() : nil
        do {
            while let chunk = try h.read(upToCount: 1 << 20), !chunk.isEmpty {
                hasher?.update(data: chunk)
                try out.write(contentsOf: chunk)
            }
            try out.synchronize()
        } catch {
            throw SluiceError(.io, "copy failed: \(error.localizedDescription)", at: SourceLocation(file: p))
        }
        _ = try changed(key, p, ifMatch: before.etag)  // rewritten while we read it
        return (before, hasher.map { SigV4Signer.hex($0.finalize()) })
    }

    func writeDurably(_ p: String, _ write: (FileHandle) throws -> Void) throws(SluiceError) -> String {
        let tmp = p + ".sluice-tmp"
        do {
            let h = try Download.openFile(tmp)
            try write(h)
            try h.synchronize()
            try h.close()
            guard rename(tmp, p) == 0 else { throw SluiceError(.io, "rename failed: \(String(cString: strerror(errno)))", at: SourceLocation(file: p)) }
        } catch let e as SluiceError {
            try? FileManager.default.removeItem(atPath: tmp)
            throw e
        } catch {
            try? FileManager.default.removeItem(atPath: tmp)
            throw SluiceError(.io, "write failed: \(error.localizedDescription)", at: SourceLocation(file: p))
        }
        return Self.info(key: "", path: p)?.etag ?? ""
    }

    public func put(_ key: String, bytes: [UInt8], contentType: String?) async throws(SluiceError) -> String {
        try writeDurably(try path(key)) { try $0.write(contentsOf: Data(bytes)) }
    }

    public func upload(_ key: String, from source: String, contentType: String?) async throws(SluiceError) -> String {
        guard let input = FileHandle(forReadingAtPath: source) else { throw SluiceError(.notFound, "cannot open", at: SourceLocation(file: source)) }
        defer { try? input.close() }
        return try writeDurably(try path(key)) { h in
            while let chunk = try input.read(upToCount: 1 << 20), !chunk.isEmpty { try h.write(contentsOf: chunk) }
        }
    }

    /// Gives the file a second name at `key` without copying its bytes (a hard link,
    /// replacing any object there); copies when the file system will not link (another
    /// device, no links).
    @discardableResult
    public func adopt(_ key: String, file: String) async throws(SluiceError) -> String {
        let p = try path(key)
        let tmp = p + ".sluice-tmp"
        unlink(tmp)  // a leftover from a killed attempt
        try? FileManager.default.createDirectory(atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        guard link(file, tmp) == 0 else { return try await upload(key, from: file, contentType: nil) }
        guard rename(tmp, p) == 0 else {
            unlink(tmp)
            throw SluiceError(.io, "rename failed: \(String(cString: strerror(errno)))", at: SourceLocation(file: p))
        }
        return Self.info(key: key, path: p)?.etag ?? ""
    }

    public func copy(from: String, to: String, ifMatch: String?) async throws(SluiceError) {
        let src = try path(from)
        let before = try changed(from, src, ifMatch: ifMatch)
        _ = try await upload(to, from: src, contentType: nil)
        _ = try changed(from, src, ifMatch: before.etag)
    }

    public func delete(_ key: String) async throws(SluiceError) {
        let p = try path(key)
        if unlink(p) != 0 && errno != ENOENT { throw SluiceError(.io, "cannot delete: \(String(cString: strerror(errno)))", at: SourceLocation(file: p)) }
    }
}
