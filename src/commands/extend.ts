import definition from '../cli/defs/extend.js'
import {oclifCommand} from '../cli/oclif-adapter.js'

export default oclifCommand(definition)
