package codec

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// System events are stored with type "sys.<Message>" and the message as
// payload: any message of package pb can be one, so adding a system event
// needs no codec change. Decoding finds the message type by name in the
// protobuf registry, where package pb (imported by this package) registers
// its messages.
const systemTypePrefix = "sys."

// protoPackage is the proto package of every message of package pb.
const protoPackage = "mastertrust.v1."

// EncodeSystemEvent is the journal type and payload of a system event.
func EncodeSystemEvent(m proto.Message) (string, []byte, error) {
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return "", nil, fmt.Errorf("codec: encode %s: %w", m.ProtoReflect().Descriptor().Name(), err)
	}
	return systemTypePrefix + string(m.ProtoReflect().Descriptor().Name()), data, nil
}

// IsSystemEvent reports whether typ names a system event.
func IsSystemEvent(typ string) bool { return strings.HasPrefix(typ, systemTypePrefix) }

// DecodeSystemEvent decodes a system event stored with type typ.
func DecodeSystemEvent(typ string, data []byte) (proto.Message, error) {
	name, ok := strings.CutPrefix(typ, systemTypePrefix)
	if !ok {
		return nil, fmt.Errorf("codec: %q is not a system event type", typ)
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(protoPackage + name))
	if err != nil {
		return nil, fmt.Errorf("codec: unknown system event type %q", typ)
	}
	m := mt.New().Interface()
	if err := proto.Unmarshal(data, m); err != nil {
		return nil, fmt.Errorf("codec: decode %s: %w", typ, err)
	}
	return m, nil
}
