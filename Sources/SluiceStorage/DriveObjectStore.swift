public import SluiceCore
public import Foundation
import Crypto
import NIOHTTP1

/// How a Drive folder is read: which time is an object's (the watermark's) time, and the
/// shared drive it is in.
public struct DriveOptions: Sendable, Equatable {
    /// `createdTime` (seed 003's watermark) unless `?by=modified`.
    public var byModified = false
    /// A shared drive's id (`?drive=ID`): listings search that drive.
    public var sharedDrive: String?
    /// Sub-folders too (`?recursive=true`): a file's key is its path under the folder.
    public var recursive = false

    public init() {}
}

/// The files directly in one Google Drive folder, read through the Drive v3 API. A file's
/// key is its name (Google Sheets get `.csv`: they are exported as CSV); its etag is
/// `fileId:md5Checksum` (`fileId:modifiedTime` for Sheets), so the file ledger tells each
/// file and each of its revisions apart, and a fetch reads exactly the file it listed. Its
/// time is `createdTime`, or `modifiedTime` when asked. Read-only: Drive is a source.
public struct DriveObjectStore: ObjectStore {
    public let folder: String
    public let options: DriveOptions
    let api: GoogleAPI
    public var displayName: String { "gdrive://\(folder)" }

    static let sheet = "application/vnd.google-apps.spreadsheet"
    static let folderType = "application/vnd.google-apps.folder"
    static let fields = "id,name,mimeType,size,md5Checksum,createdTime,modifiedTime,trashed"

    public init(folder: String, options: DriveOptions = DriveOptions(), config: GoogleConfig) throws(SluiceError) {
        guard Self.isValidID(folder) else { throw SluiceError(.invalidArgument, "'\(folder)' is not a Drive folder id (letters, digits, - and _)") }
        if let d = options.sharedDrive, !Self.isValidID(d) { throw SluiceError(.invalidArgument, "'\(d)' is not a shared drive id") }
        self.folder = folder
        self.options = options
        api = GoogleAPI(config: config, name: "gdrive://\(folder)")
    }

    /// Drive ids: letters, digits, `-` and `_` (they are put inside queries as literals).
    public static func isValidID(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 200 && s.utf8.allSatisfy { c in
            (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == UInt8(ascii: "-") || c == UInt8(ascii: "_")
        }
    }

    /// A `files` resource as Sluice asks for it.
    struct File: Decodable {
        var id: String
        var name: String
        var mimeType: String?
        var size: String?
        var md5Checksum: String?
        var createdTime: String?
        var modifiedTime: String?
        var trashed: Bool?

        var isSheet: Bool { mimeType == DriveObjectStore.sheet }
        /// Binary files and Sheets; folders, shortcuts and other Google documents are not data.
        var isData: Bool { isSheet || !(mimeType ?? "").hasPrefix("application/vnd.google-apps.") }
        var key: String { isSheet && !name.lowercased().hasSuffix(".csv") ? name + ".csv" : name }
        var etag: String { id + ":" + (md5Checksum ?? modifiedTime ?? "") }

        func info(byModified: Bool) -> ObjectInfo {
            ObjectInfo(key: key, size: size.flatMap { Int64($0) } ?? 0, etag: etag,
                       lastModified: GoogleAPI.date(byModified ? modifiedTime : createdTime))
        }
    }

    /// A string literal of the query language: `'` and `\` escaped.
    static func literal(_ s: String) -> String {
        "'" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
    }

    var filesURL: String { api.config.driveEndpoint + "/drive/v3/files" }

    /// The listing query: what is in `parent` (the folder by default), not trashed, newer than
    /// `newerThan` by the chosen time; `folders`: only sub-folders (true) or no sub-folders (false).
    func q(in parent: String? = nil, newerThan: Date?, name: String? = nil, folders: Bool? = nil) -> String {
        var q = "\(Self.literal(parent ?? folder)) in parents and trashed = false"
        if let newerThan { q += " and \(options.byModified ? "modifiedTime" : "createdTime") > \(Self.literal(GoogleAPI.rfc3339(newerThan)))" }
        if let name { q += " and name = \(Self.literal(name))" }
        if let folders { q += " and mimeType \(folders ? "=" : "!=") \(Self.literal(Self.folderType))" }
        return q
    }

    func listQuery(_ q: String, pageToken: String?, pageSize: Int) -> String {
        var items: [(String, String?)] = [("q", q), ("pageSize", String(pageSize)), ("pageToken", pageToken),
                                          ("fields", "nextPageToken,incompleteSearch,files(\(Self.fields))"),
                                          ("orderBy", "name"), ("supportsAllDrives", "true"), ("includeItemsFromAllDrives", "true")]
        if let d = options.sharedDrive { items += [("corpora", "drive"), ("driveId", d)] }
        return filesURL + GoogleAPI.query(items)
    }


    struct Page: Decodable { var files: [File]?; var nextPageToken: String?; var incompleteSearch: Bool? }

    func page(_ q: String, token: String?, size: Int) async throws(SluiceError) -> Page {
        let a = try await api.call("files.list", url: listQuery(q, pageToken: token, pageSize: size))
        guard a.status == 200 else { throw api.fail("files.list", a, object: "") }
        let p = try api.decode(Page.self, a, "files.list")
        if p.incompleteSearch == true {
            throw SluiceError(.unavailable, "files.list on \(displayName): Drive answered an incomplete search (try again, or name the shared drive with ?drive=ID)")
        }
        return p
    }

    public func list(prefix: String, continuation: String?, limit: Int) async throws(SluiceError) -> ObjectPage {
        try await list(prefix: prefix, continuation: continuation, limit: limit, newerThan: nil)
    }

    /// Drive filters by time on the server: a watch with a watermark lists only new files.
    /// Recursively, the whole tree comes in one answer: each folder's sub-folders (whatever
    /// their age: an old folder gets new files), then its files newer than `newerThan`.
    public func list(prefix: String, continuation: String?, limit: Int, newerThan: Date?) async throws(SluiceError) -> ObjectPage {
        if options.recursive {
            var out: [ObjectInfo] = []
            var queue = [(id: folder, path: "", depth: 0)]
            while let (id, path, depth) = queue.popLast() {
                for f in try await all(q(in: id, newerThan: nil, folders: true)) where depth < 32 {
                    queue.append((f.id, path + f.name + "/", depth + 1))
                }
                for f in try await all(q(in: id, newerThan: newerThan, folders: false)) where f.isData && (path + f.key).hasPrefix(prefix) {
                    var info = f.info(byModified: options.byModified)
                    info.key = path + f.key
                    out.append(info)
                }
            }
            return ObjectPage(objects: out.sorted { $0.key < $1.key }, continuation: nil)
        }
        let p = try await page(q(newerThan: newerThan), token: continuation, size: max(1, min(limit, 1000)))
        let objects = (p.files ?? []).filter { $0.isData && $0.key.hasPrefix(prefix) }.map { $0.info(byModified: options.byModified) }
        return ObjectPage(objects: objects, continuation: p.nextPageToken)
    }

    /// Every page of a query.
    func all(_ q: String) async throws(SluiceError) -> [File] {
        var out: [File] = []
        var token: String? = nil
        repeat {
            let p = try await page(q, token: token, size: 1000)
            out += p.files ?? []
            token = p.nextPageToken
        } while token != nil
        return out
    }

    /// The newest data file named `key` (a Sheet also by its name without `.csv`); under
    /// `?recursive=true`, a path through sub-folders.
    func find(_ key: String) async throws(SluiceError) -> File? {
        var parent = folder
        var base = Substring(key)
        if options.recursive {
            let parts = key.split(separator: "/", omittingEmptySubsequences: false)
            for dir in parts.dropLast() {
                guard let sub = try await all(q(in: parent, newerThan: nil, name: String(dir), folders: true)).first else { return nil }
                parent = sub.id
            }
            base = parts.last ?? ""
        }
        var names = [String(base)]
        if base.lowercased().hasSuffix(".csv") { names.append(String(base.dropLast(4))) }
        for name in names {
            let found = (try await page(q(in: parent, newerThan: nil, name: name), token: nil, size: 100).files ?? []).filter { $0.isData && $0.key == base }
            if let f = found.max(by: { ($0.modifiedTime ?? "") < ($1.modifiedTime ?? "") }) { return f }
        }
        return nil
    }

    /// The file an etag names, as it is now (nil: deleted or trashed).
    func file(id: String) async throws(SluiceError) -> File? {
        let url = filesURL + "/" + GoogleAPI.encode(id) + GoogleAPI.query([("fields", Self.fields), ("supportsAllDrives", "true")])
        let a = try await api.call("files.get", url: url)
        if a.status == 404 { return nil }
        guard a.status == 200 else { throw api.fail("files.get", a, object: id) }
        let f = try api.decode(File.self, a, "files.get")
        return f.trashed == true ? nil : f
    }

    /// The file `key` names: the one listed with `etag` (refused if it changed since), else the newest of that name.
    func resolve(_ key: String, etag: String?) async throws(SluiceError) -> File {
        guard let etag else {
            guard let f = try await find(key) else { throw SluiceError(.notFound, "\(displayName)/\(key) does not exist") }
            return f
        }
        let id = String(etag.prefix { $0 != ":" })
        guard Self.isValidID(id), let f = try await file(id: id) else {
            throw SluiceError(.aborted, "\(displayName)/\(key): removed since it was listed")
        }
        if f.etag != etag { throw SluiceError(.aborted, "\(displayName)/\(key): changed since it was listed (\(etag), now \(f.etag))") }
        return f
    }

    /// Media for files, CSV export for Sheets.
    func contentURL(_ f: File) -> String {
        f.isSheet ? filesURL + "/" + GoogleAPI.encode(f.id) + "/export" + GoogleAPI.query([("mimeType", "text/csv")])
                  : filesURL + "/" + GoogleAPI.encode(f.id) + GoogleAPI.query([("alt", "media"), ("supportsAllDrives", "true")])
    }

    public func head(_ key: String) async throws(SluiceError) -> ObjectInfo? {
        try await find(key)?.info(byModified: options.byModified)
    }

    public func get(_ key: String, range: Range<Int64>?, ifMatch: String?) async throws(SluiceError) -> [UInt8] {
        let f = try await resolve(key, etag: ifMatch)
        // Exports take no Range: the slice is cut here.
        let headers = range.flatMap { f.isSheet ? nil : [("Range", "bytes=\($0.lowerBound)-\($0.upperBound - 1)")] } ?? []
        let a = try await api.call(f.isSheet ? "files.export" : "files.get (media)", url: contentURL(f), headers: headers)
        guard a.status == 200 || a.status == 206 else { throw api.fail(f.isSheet ? "files.export" : "files.get (media)", a, object: key) }
        guard f.isSheet, let range else { return a.body }
        let lo = Int(clamping: min(range.lowerBound, Int64(a.body.count))), hi = Int(clamping: min(range.upperBound, Int64(a.body.count)))
        return Array(a.body[lo..<max(lo, hi)])
    }

    /// Streams the file, checking its MD5 against the listed one (a file replaced while it
    /// was read is refused); a Sheet is exported and checked unchanged afterwards.
    public func download(_ key: String, to target: String, ifMatch: String?, hashing: Bool) async throws(SluiceError) -> (info: ObjectInfo, sha256: String?) {
        let f = try await resolve(key, etag: ifMatch)
        let out = try Download.openFile(target)
        defer { try? out.close() }  // synchronized by the download
        var sha = hashing ? SHA256() : nil
        var md5 = Insecure.MD5()
        var size: Int64 = 0
        let what = f.isSheet ? "files.export" : "files.get (media)"
        let a = try await api.download(what, url: contentURL(f), into: out, onHeaders: { _ throws(SluiceError) in
            sha = hashing ? SHA256() : nil
            md5 = Insecure.MD5()
            size = 0
        }, chunk: { p in
            size += Int64(p.count)
            sha?.update(bufferPointer: p)
            md5.update(bufferPointer: p)
        })
        guard a.status == 200 else { throw api.fail(what, a, object: key) }
        if let expected = f.md5Checksum, SigV4Signer.hex(md5.finalize()) != expected.lowercased() {
            throw SluiceError(.aborted, "\(displayName)/\(key): changed while it was read (MD5 \(expected) listed)")
        }
        if f.isSheet, let now = try await file(id: f.id), now.etag != f.etag {
            throw SluiceError(.aborted, "\(displayName)/\(key): the sheet changed while it was exported")
        }
        var info = f.info(byModified: options.byModified)
        info.key = key
        info.size = size
        return (info, sha.map { SigV4Signer.hex($0.finalize()) })
    }

    static func readOnly(_ what: String) -> SluiceError {
        SluiceError(.unsupported, "Google Drive is a source: Sluice does not \(what) there (write the raw layer to gs://, s3:// or a folder)")
    }

    public func put(_ key: String, bytes: [UInt8], contentType: String?) async throws(SluiceError) -> String { throw Self.readOnly("write files") }
    public func upload(_ key: String, from path: String, contentType: String?) async throws(SluiceError) -> String { throw Self.readOnly("write files") }
    public func copy(from: String, to: String, ifMatch: String?) async throws(SluiceError) { throw Self.readOnly("copy files") }
    public func delete(_ key: String) async throws(SluiceError) { throw Self.readOnly("delete files") }
}
