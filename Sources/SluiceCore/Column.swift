/// One typed column of a ``RecordBatch``: values in a flat array chosen by the type's
/// ``ColumnStorageKind`` plus a validity mask (`false` = NULL).
///
/// Only the array for the column's storage kind is used; the others stay empty. Null
/// slots hold a zero value so that indices line up.
public struct Column: Sendable {
    public let type: ColumnType
    /// int64, bool (0/1), date (days), timestamp/timestamptz/time (microseconds).
    public var ints: [Int64] = []
    public var doubles: [Double] = []
    public var decimals: [ExactDecimal] = []
    /// Concatenated bytes of variable-length values; value `i` is `data[offsets[i]..<offsets[i+1]]`.
    public var data: [UInt8] = []
    public var offsets: [Int] = [0]
    public var validity: [Bool] = []

    public init(type: ColumnType, capacity: Int = 0) {
        self.type = type
        validity.reserveCapacity(capacity)
        switch type.storage {
        case .int64: ints.reserveCapacity(capacity)
        case .float64: doubles.reserveCapacity(capacity)
        case .decimal: decimals.reserveCapacity(capacity)
        case .bytes:
            offsets.reserveCapacity(capacity + 1)
            data.reserveCapacity(capacity * 16)
        }
    }

    public var count: Int { validity.count }

    @inlinable public func isNull(_ i: Int) -> Bool { !validity[i] }

    // MARK: Appending

    public mutating func appendNull() {
        validity.append(false)
        switch type.storage {
        case .int64: ints.append(0)
        case .float64: doubles.append(0)
        case .decimal: decimals.append(ExactDecimal(significand: 0, scale: 0))
        case .bytes: offsets.append(data.count)
        }
    }

    public mutating func append(int v: Int64) {
        ints.append(v)
        validity.append(true)
    }

    public mutating func append(double v: Double) {
        doubles.append(v)
        validity.append(true)
    }

    public mutating func append(decimal v: ExactDecimal) {
        decimals.append(v)
        validity.append(true)
    }

    public mutating func append(bytes v: UnsafeRawBufferPointer) {
        data.append(contentsOf: v)
        offsets.append(data.count)
        validity.append(true)
    }

    public mutating func append<C: Collection>(bytes v: C) where C.Element == UInt8 {
        data.append(contentsOf: v)
        offsets.append(data.count)
        validity.append(true)
    }

    /// Appends value `i` of `other` (same storage kind), NULL included.
    @inlinable public mutating func append(from other: Column, at i: Int) {
        guard other.validity[i] else { appendNull(); return }
        switch type.storage {
        case .int64: ints.append(other.ints[i])
        case .float64: doubles.append(other.doubles[i])
        case .decimal: decimals.append(other.decimals[i])
        case .bytes:
            data.append(contentsOf: other.data[other.offsets[i]..<other.offsets[i + 1]])
            offsets.append(data.count)
        }
        validity.append(true)
    }

    /// Appends values `range` of `other` (same storage kind) in one copy per array.
    public mutating func append(from other: Column, range: Range<Int>) {
        guard !range.isEmpty else { return }
        validity.append(contentsOf: other.validity[range])
        switch type.storage {
        case .int64: ints.append(contentsOf: other.ints[range])
        case .float64: doubles.append(contentsOf: other.doubles[range])
        case .decimal: decimals.append(contentsOf: other.decimals[range])
        case .bytes:
            let start = other.offsets[range.lowerBound], end = other.offsets[range.upperBound]
            let shift = data.count - start
            data.append(contentsOf: other.data[start..<end])
            offsets.reserveCapacity(offsets.count + range.count)
            for k in (range.lowerBound + 1)...range.upperBound { offsets.append(other.offsets[k] + shift) }
        }
    }

    /// Appends the values of `other` at `indices` (a dictionary lookup), each index already
    /// checked to be in range, one pass per array.
    public mutating func append(from other: Column, gathering indices: UnsafeBufferPointer<Int32>) {
        let n = indices.count
        guard n > 0 else { return }
        other.validity.withUnsafeBufferPointer { v in
            validity.reserveCapacity(validity.count + n)
            for i in indices { validity.append(v[Int(i)]) }
        }
        switch type.storage {
        case .int64:
            ints.reserveCapacity(ints.count + n)
            other.ints.withUnsafeBufferPointer { src in for i in indices { ints.append(src[Int(i)]) } }
        case .float64:
            doubles.reserveCapacity(doubles.count + n)
            other.doubles.withUnsafeBufferPointer { src in for i in indices { doubles.append(src[Int(i)]) } }
        case .decimal:
            decimals.reserveCapacity(decimals.count + n)
            for i in indices { decimals.append(other.decimals[Int(i)]) }
        case .bytes:
            other.offsets.withUnsafeBufferPointer { off in
                var total = 0
                for i in indices { total += off[Int(i) + 1] - off[Int(i)] }
                let base = data.count
                data.append(contentsOf: repeatElement(0, count: total))
                offsets.reserveCapacity(offsets.count + n)
                other.data.withUnsafeBytes { src in
                    data.withUnsafeMutableBytes { dst in
                        var at = base
                        for i in indices {
                            let s = off[Int(i)], len = off[Int(i) + 1] - s
                            if len > 0 { (dst.baseAddress! + at).copyMemory(from: src.baseAddress! + s, byteCount: len) }
                            at += len
                            offsets.append(at)
                        }
                    }
                }
            }
        }
    }

    /// Removes the last value (used when a row is rejected after some columns were set).
    public mutating func removeLast() {
        validity.removeLast()
        switch type.storage {
        case .int64: ints.removeLast()
        case .float64: doubles.removeLast()
        case .decimal: decimals.removeLast()
        case .bytes:
            offsets.removeLast()
            data.removeSubrange(offsets[offsets.count - 1]...)
        }
    }

    public mutating func removeAll(keepingCapacity: Bool = true) {
        validity.removeAll(keepingCapacity: keepingCapacity)
        ints.removeAll(keepingCapacity: keepingCapacity)
        doubles.removeAll(keepingCapacity: keepingCapacity)
        decimals.removeAll(keepingCapacity: keepingCapacity)
        data.removeAll(keepingCapacity: keepingCapacity)
        offsets.removeAll(keepingCapacity: keepingCapacity)
        offsets.append(0)
    }

    // MARK: Reading

    /// The bytes of variable-length value `i` (empty for NULL).
    @inlinable public func withBytes<R>(at i: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let start = offsets[i], end = offsets[i + 1]
        return try data.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[start..<end])) }
    }

    public func bytes(at i: Int) -> ArraySlice<UInt8> { data[offsets[i]..<offsets[i + 1]] }

    /// The value `i` as a Swift value, for tests, rendering and slow paths. Hot paths read the arrays.
    public func value(at i: Int) -> Value {
        if !validity[i] { return .null }
        switch type {
        case .int64: return .int64(ints[i])
        case .bool: return .bool(ints[i] != 0)
        case .date: return .date(days: ints[i])
        case .timestamp: return .timestamp(micros: ints[i])
        case .timestamptz: return .timestamptz(micros: ints[i])
        case .time: return .time(micros: ints[i])
        case .float64: return .float64(doubles[i])
        case .decimal: return .decimal(decimals[i])
        case .text: return .text(String(decoding: bytes(at: i), as: UTF8.self))
        case .json: return .json(String(decoding: bytes(at: i), as: UTF8.self))
        case .bytes: return .bytes(Array(bytes(at: i)))
        case .uuid: return .uuid(Array(bytes(at: i)))
        }
    }
}
