# cython: language_level=3
# A msgspec Struct's fields read straight from their slots (gateway/wire/_answers.pyx,
# gateway/wire/_intake.pyx): a field read as an attribute goes through the generic
# ``getattr`` (about 130 instructions); from its slot it is a load.  msgspec keeps every
# field of a Struct in an object slot described by a member descriptor on the class, whose
# offset ``struct_slot`` takes once, at import, checking that it is one (anything else stops
# the import with a clear error rather than reading the wrong memory).  Inline functions
# only: nothing to build, each module that cimports this compiles them in.

from cpython.object cimport PyObject, PyTypeObject


cdef extern from "Python.h":
    ctypedef struct PyMemberDef:
        int type
        Py_ssize_t offset
        int flags
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member
    PyTypeObject PyMemberDescr_Type
    int T_OBJECT_EX


cdef inline Py_ssize_t struct_slot(object cls, str name) except -1:
    """The offset of ``cls.name``'s object slot."""
    descr = cls.__dict__.get(name)
    descr_type = type(descr)
    if descr is None or <PyTypeObject*>descr_type is not &PyMemberDescr_Type:
        raise ImportError(f"{cls.__name__}.{name} is not a Struct field slot")
    cdef PyMemberDef* member = (<PyMemberDescrObject*><PyObject*>descr).d_member
    if member.type != T_OBJECT_EX or member.offset < <Py_ssize_t>sizeof(PyObject):
        raise ImportError(f"{cls.__name__}.{name} is not an object slot")
    return member.offset


cdef inline object slot_value(object struct, Py_ssize_t offset):
    """The field at ``offset`` of ``struct``, whose type the caller checked."""
    cdef PyObject* value = (<PyObject**>((<char*><PyObject*>struct) + offset))[0]
    if value is NULL:  # msgspec leaves a slot empty only while building: not ours to see
        raise AttributeError("a Struct field is unset")
    return <object>value
