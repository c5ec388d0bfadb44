public import SluiceCore

/// Bytes read by position: what formats with a footer (Parquet) need instead of a stream.
public protocol RandomAccessSource: AnyObject {
    var size: Int64 { get }
    /// Exactly `count` bytes at `offset` (both checked by the caller against ``size``).
    func read(at offset: Int64, count: Int) throws(SluiceError) -> [UInt8]
}

/// A byte array as a random-access source (tests, fuzzing, small files).
public final class MemoryRandomAccess: RandomAccessSource {
    public let bytes: [UInt8]
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public var size: Int64 { Int64(bytes.count) }
    public func read(at offset: Int64, count: Int) throws(SluiceError) -> [UInt8] {
        guard offset >= 0, count >= 0, offset + Int64(count) <= size else { throw SluiceError(.io, "read past the end of the data") }
        return Array(bytes[Int(offset)..<(Int(offset) + count)])
    }
}
