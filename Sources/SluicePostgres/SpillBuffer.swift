import Foundation

/// Bytes kept in memory up to a limit, then in a file of `directory` (deleted when the buffer
/// goes), read back in pieces: rows a load sets aside for later without memory growing
/// with the file.
final class SpillBuffer: @unchecked Sendable {
    let limit: Int
    /// Where the file goes: the load's scratch folder (in the state folder), else the system's.
    let directory: String
    private(set) var memory: [UInt8] = []
    private var file: FileHandle?
    private var path: String?
    private(set) var count = 0
    /// The first write that failed (the load fails with it at commit).
    private(set) var failure: (any Error)?

    init(limit: Int = 8 << 20, directory: String? = nil) {
        self.limit = limit
        self.directory = directory ?? FileManager.default.temporaryDirectory.path
    }

    func append(_ bytes: [UInt8]) {
        guard !bytes.isEmpty, failure == nil else { return }
        count += bytes.count
        memory.append(contentsOf: bytes)
        if memory.count >= limit { spill() }
    }

    private func spill() {
        do {
            if file == nil {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                let p = URL(fileURLWithPath: directory).appendingPathComponent("sluice-spill-\(UUID().uuidString)").path
                guard FileManager.default.createFile(atPath: p, contents: nil) else {
                    throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: p])
                }
                path = p
                file = try FileHandle(forUpdating: URL(fileURLWithPath: p))
            }
            try file?.write(contentsOf: memory)
            memory.removeAll(keepingCapacity: true)
        } catch {
            failure = error
        }
    }

    /// Calls `body` with the bytes in order, in pieces of at most `piece` bytes.
    func forEachPiece(_ piece: Int = 1 << 20, _ body: ([UInt8]) async throws -> Void) async throws {
        if let failure { throw failure }
        if let file {
            try file.seek(toOffset: 0)
            while let data = try file.read(upToCount: piece), !data.isEmpty { try await body([UInt8](data)) }
        }
        var i = 0
        while i < memory.count {
            let end = min(i + piece, memory.count)
            try await body(Array(memory[i..<end]))
            i = end
        }
    }

    deinit {
        try? file?.close()
        if let path { try? FileManager.default.removeItem(atPath: path) }
    }
}
