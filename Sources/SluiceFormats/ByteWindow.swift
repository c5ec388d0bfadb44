import SluiceCore

/// A sliding window over a byte stream: `[start, end)` holds bytes read but not yet
/// consumed. Decoders frame records inside it; when a record is incomplete the window
/// compacts and reads more, growing only up to the record-length limit.
final class ByteWindow {
    private(set) var storage: UnsafeMutableRawBufferPointer
    var start = 0
    var end = 0
    private(set) var eof = false
    /// Bytes consumed before `start` since the beginning of the stream.
    private(set) var consumedBefore: Int64 = 0
    let readChunk: Int

    init(readChunk: Int = 1 << 20) {
        self.readChunk = readChunk
        storage = .allocate(byteCount: readChunk * 2, alignment: 16)
    }

    deinit { storage.deallocate() }

    var base: UnsafePointer<UInt8> { UnsafePointer(storage.baseAddress!.assumingMemoryBound(to: UInt8.self)) }
    var available: Int { end - start }

    func consume(to position: Int) {
        consumedBefore += Int64(position - start)
        start = position
    }

    /// Moves the unconsumed bytes to the front, grows if needed, and reads one chunk.
    /// Returns false at the end of input.
    func fill(from source: inout any ByteChunkReader) throws(SluiceError) -> Bool {
        if eof { return false }
        if start > 0 {
            if end > start { storage.baseAddress!.copyMemory(from: storage.baseAddress! + start, byteCount: end - start) }
            end -= start
            start = 0
        }
        if storage.count - end < readChunk {
            let bigger = UnsafeMutableRawBufferPointer.allocate(byteCount: max(storage.count * 2, end + readChunk), alignment: 16)
            if end > 0 { bigger.baseAddress!.copyMemory(from: storage.baseAddress!, byteCount: end) }
            storage.deallocate()
            storage = bigger
        }
        let n = try source.read(into: UnsafeMutableRawBufferPointer(rebasing: storage[end..<storage.count]))
        if n == 0 { eof = true; return false }
        end += n
        return true
    }

    /// Drops everything buffered (used while skipping an over-long record).
    func discardAll() {
        consumedBefore += Int64(end - start)
        start = 0
        end = 0
    }

    func bytes(_ from: Int, _ to: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: storage.baseAddress! + from, count: to - from)
    }
}
